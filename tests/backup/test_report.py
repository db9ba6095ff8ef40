"""What a run tells the world: metrics (textfile and Pushgateway) and Slack messages."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.backup._helpers import make_project
from tests.pushgateway import running_pushgateway
from tests.slack_server import SlackServer


def textfile_values(path: Path) -> dict[str, float]:
    families = text_string_to_metric_families(path.read_text())
    return {sample.name: sample.value for family in families for sample in family.samples}


def test_textfile_metrics_after_a_success_and_after_a_failure(tmp_path: Path) -> None:
    """A success records its time, size and file count; a later failure sets last_run_success
    to 0 and keeps the last success's figures.
    """
    root = tmp_path / "proj"
    project = make_project(root, "")
    project.config.write_text(
        project.config.read_text() + '\n[monitoring]\ntextfile_dir = "metrics"\n'
    )
    (root / "metrics").mkdir()
    backup = project.run_json()
    metrics_file = root / "metrics" / "opsctl_backup.prom"

    after_success = textfile_values(metrics_file)
    assert after_success["opsctl_backup_last_run_success"] == 1
    assert after_success["opsctl_backup_files"] == 5
    assert after_success["opsctl_backup_size_bytes"] == backup["archive"]["size_bytes"]
    success_time = after_success["opsctl_backup_last_success_timestamp_seconds"]
    assert success_time > 1.7e9

    project.config.write_text(
        project.config.read_text().replace('paths = ["data"]', 'paths = ["gone"]')
    )
    assert project.cli("backup", "run").exit_code == 1
    after_failure = textfile_values(metrics_file)
    assert after_failure["opsctl_backup_last_run_success"] == 0
    assert after_failure["opsctl_backup_last_success_timestamp_seconds"] == success_time


def test_metrics_are_pushed_to_a_real_pushgateway(tmp_path: Path) -> None:
    """With monitoring.pushgateway_url the run pushes its figures under job 'backup'."""
    with running_pushgateway(tmp_path / "gateway") as gateway:
        project = make_project(tmp_path / "proj")
        project.config.write_text(
            project.config.read_text() + f'\n[monitoring]\npushgateway_url = "{gateway.url}"\n'
        )
        project.run_json()

        samples = gateway.samples("opsctl_backup_last_run_success")
        files = gateway.samples("opsctl_backup_files")

    assert [sample.value for sample in samples] == [1]
    assert samples[0].labels["job"] == "backup"
    assert [sample.value for sample in files] == [5]


def test_a_failure_is_announced_on_slack_and_a_success_only_when_asked(tmp_path: Path) -> None:
    """Failures always reach Slack (with what failed); successes only with notify.on_success."""
    with SlackServer() as slack:
        root = tmp_path / "proj"
        project = make_project(root, paths='["data", "uploads"]')
        (root / ".env").write_text(f"SLACK_WEBHOOK_URL={slack.webhook_url}\n")

        assert project.cli("backup", "run").exit_code == 1
        failed = slack.wait_for_messages(1)
        project.config.write_text(
            project.config.read_text().replace(', "uploads"', "")
            + "\n[notify]\non_success = true\n"
        )
        assert project.cli("backup", "run").exit_code == 0
        both = slack.wait_for_messages(2)

    assert "failed" in failed[0].text
    assert "uploads" in failed[0].text
    assert "succeeded" in both[1].text
