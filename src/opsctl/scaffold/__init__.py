"""``opsctl init``: the files a new project starts from, never overwriting one."""

from opsctl.scaffold._init import init_project

__all__ = ["init_project"]
