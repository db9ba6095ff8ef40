"""``gpu``: telemetry and who holds memory (status), the framework stack (check), progressive
cleanup and recommended settings (optimize).

The subcommands live in two modules: what observes the devices, and what acts on them.
"""

from __future__ import annotations

import typer

from opsctl.commands import _gpu_manage, _gpu_observe

app = typer.Typer(
    name="gpu",
    help="Show, check, clean up and tune the GPUs and the frameworks using them.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("status")(_gpu_observe.status)
app.command("check")(_gpu_manage.check)
app.command("cleanup")(_gpu_manage.cleanup)
app.command("optimize")(_gpu_manage.optimize)
