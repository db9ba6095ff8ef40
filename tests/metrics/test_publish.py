"""publish(): a real Pushgateway read back, node_exporter textfiles, and clear failures."""

from __future__ import annotations

import http.server
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.errors import ExitCode, OperationFailedError, UsageError
from opsctl.metrics import counter, gauge, new_registry, publish
from opsctl.metrics._publish import push
from tests.pushgateway import Pushgateway
from tests.support import free_port


@pytest.fixture
def textfiles(tmp_path: Path) -> Path:
    """An empty folder for textfiles."""
    folder = tmp_path / "textfiles"
    folder.mkdir()
    return folder


def _verify_registry(*, success: bool, statuses: dict[str, int]) -> Any:
    registry = new_registry()
    gauge(registry, "opsctl_verify_success").set(1 if success else 0)
    gauge(registry, "opsctl_verify_last_run_timestamp_seconds").set(1_790_000_000)
    for status, count in statuses.items():
        gauge(registry, "opsctl_verify_checks").labels(status=status).set(count)
    return registry


def _parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_push_is_read_back_from_the_gateway_with_job_and_instance(
    pushgateway: Pushgateway,
) -> None:
    """Pushed samples appear in the gateway's scrape under job and instance=hostname."""
    publish(
        _verify_registry(success=True, statuses={"pass": 7, "fail": 0}),
        job="verify",
        push_gateway=pushgateway.url,
    )

    host = socket.gethostname()
    (success,) = pushgateway.samples("opsctl_verify_success")
    assert success.labels == {"job": "verify", "instance": host}
    assert success.value == 1
    checks = {s.labels["status"]: s.value for s in pushgateway.samples("opsctl_verify_checks")}
    assert checks == {"pass": 7, "fail": 0}
    (stamp,) = pushgateway.samples("opsctl_verify_last_run_timestamp_seconds")
    assert stamp.value == 1_790_000_000
    helps = {family.name: family.documentation for family in pushgateway.families()}
    assert helps["opsctl_verify_success"].startswith("1 when the last verify run passed")


def test_push_replaces_the_jobs_group_and_leaves_other_jobs_alone(
    pushgateway: Pushgateway,
) -> None:
    """A second push of a job drops the series it no longer has; another job's stay."""
    first = _verify_registry(success=False, statuses={"pass": 3, "fail": 2})
    gauge(first, "opsctl_verify_duration_seconds").set(4.5)
    publish(first, job="verify", push_gateway=pushgateway.url)
    backup = new_registry()
    gauge(backup, "opsctl_backup_last_run_success").set(1)
    publish(backup, job="backup", push_gateway=pushgateway.url)

    publish(
        _verify_registry(success=True, statuses={"pass": 5}),
        job="verify",
        push_gateway=pushgateway.url,
    )

    checks = {s.labels["status"]: s.value for s in pushgateway.samples("opsctl_verify_checks")}
    assert checks == {"pass": 5}
    assert [s.value for s in pushgateway.samples("opsctl_verify_success")] == [1]
    assert pushgateway.samples("opsctl_verify_duration_seconds") == []
    (kept,) = pushgateway.samples("opsctl_backup_last_run_success")
    assert kept.labels["job"] == "backup"


def test_counters_are_pushed_with_total_suffix(pushgateway: Pushgateway) -> None:
    """A catalog counter reaches the gateway under its catalog name."""
    registry = new_registry()
    counter(registry, "opsctl_monitor_cycles_total").inc(3)

    publish(registry, job="monitor", push_gateway=pushgateway.url)

    assert [s.value for s in pushgateway.samples("opsctl_monitor_cycles_total")] == [3]


def test_refused_connection_is_a_clear_failure_without_credentials() -> None:
    """Nothing listening: OperationFailedError (exit 1) naming the URL, not the password."""
    port = free_port()
    url = f"http://ops:hunter2-secret@127.0.0.1:{port}"

    with pytest.raises(OperationFailedError) as caught:
        publish(new_registry(), job="verify", push_gateway=url)

    message = caught.value.message
    assert caught.value.exit_code == ExitCode.FAILED
    assert f"http://127.0.0.1:{port}" in message
    assert "refused" in message
    assert "hunter2" not in message
    assert "ops@" not in message


def test_gateway_answering_an_error_status_is_reported(pushgateway: Pushgateway) -> None:
    """The real gateway's 404 for an unknown path prefix is named in the message."""
    with pytest.raises(OperationFailedError) as caught:
        publish(new_registry(), job="verify", push_gateway=f"{pushgateway.url}/no/such/prefix")

    assert "HTTP 404" in caught.value.message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback socket that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def test_gateway_that_never_answers_times_out(silent_server: int) -> None:
    """A hanging gateway costs the timeout, then fails naming it."""
    with pytest.raises(OperationFailedError) as caught:
        push(
            new_registry(),
            job="verify",
            url=f"http://127.0.0.1:{silent_server}",
            timeout_seconds=0.5,
        )

    assert "no answer within 0.5 s" in caught.value.message


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []  # noqa: RUF012

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    """user:password@ in the URL becomes an Authorization header, not part of the path."""
    _RecordingHandler.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        publish(new_registry(), job="verify", push_gateway=f"http://ops:s%40cret@127.0.0.1:{port}/")
    finally:
        server.shutdown()
        server.server_close()

    ((method, path, authorization),) = _RecordingHandler.seen
    assert method == "PUT"
    assert path == f"/metrics/job/verify/instance/{socket.gethostname()}"
    assert authorization == "Basic b3BzOnNAY3JldA=="  # base64 of "ops:s@cret"


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1:9091", "127.0.0.1:9091", "http://", "file:///tmp/x", "http://[::1"],
)
def test_malformed_gateway_urls_are_usage_errors(url: str) -> None:
    """Only http(s) URLs with a host are accepted; anything else exits 2 before a push."""
    with pytest.raises(UsageError) as caught:
        publish(new_registry(), job="verify", push_gateway=url)

    assert caught.value.exit_code == ExitCode.USAGE
    assert "Pushgateway URL" in caught.value.message


@pytest.mark.parametrize("job", ["", "a/b", "../x", "x y", "j" * 65])
def test_bad_job_names_are_refused(job: str, textfiles: Path) -> None:
    """A job name must be safe in a file name and a URL path."""
    with pytest.raises(UsageError, match="Job name"):
        publish(new_registry(), job=job, textfile_dir=textfiles)

    assert list(textfiles.iterdir()) == []


def test_textfile_is_written_with_mode_0644_and_parses(textfiles: Path) -> None:
    """DIR/opsctl_<job>.prom holds the registry's exposition, world-readable."""
    publish(
        _verify_registry(success=True, statuses={"pass": 4, "warn": 1}),
        job="verify",
        textfile_dir=textfiles,
    )

    path = textfiles / "opsctl_verify.prom"
    samples = _parse(path.read_text())
    assert samples[("opsctl_verify_success", ())] == 1
    assert samples[("opsctl_verify_checks", (("status", "warn"),))] == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in textfiles.iterdir()) == ["opsctl_verify.prom"]


def test_textfile_replaces_the_old_file_and_leaves_no_temporary_files(textfiles: Path) -> None:
    """A rewrite swaps in a new file (new inode) holding only the new figures."""
    publish(
        _verify_registry(success=False, statuses={"fail": 2}), job="verify", textfile_dir=textfiles
    )
    path = textfiles / "opsctl_verify.prom"
    old_inode = path.stat().st_ino

    publish(
        _verify_registry(success=True, statuses={"pass": 9}), job="verify", textfile_dir=textfiles
    )

    samples = _parse(path.read_text())
    assert path.stat().st_ino != old_inode
    assert samples[("opsctl_verify_success", ())] == 1
    assert ("opsctl_verify_checks", (("status", "fail"),)) not in samples
    assert sorted(p.name for p in textfiles.iterdir()) == ["opsctl_verify.prom"]


def test_reader_never_sees_a_partial_textfile(textfiles: Path) -> None:
    """While the file is rewritten again and again, every read is one complete exposition."""
    path = textfiles / "opsctl_gpu.prom"
    labels = [str(index) for index in range(300)]
    stop = threading.Event()
    problems: list[str] = []

    def read_continuously() -> None:
        reads = 0
        while not stop.is_set() or reads == 0:
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            reads += 1
            try:
                families = list(text_string_to_metric_families(text))
                values = {s.labels["gpu"]: s.value for s in families[0].samples}
            except (ValueError, IndexError, KeyError) as error:
                problems.append(f"read {reads}: {len(text)} bytes do not parse: {error!r}")
                continue
            if sorted(values) != sorted(labels) or len(set(values.values())) != 1:
                problems.append(
                    f"read {reads}: {len(values)} series, values {set(values.values())}"
                )

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for round_ in range(60):
            registry = new_registry()
            metric = gauge(registry, "opsctl_gpu_process_memory_bytes")
            for label in labels:
                metric.labels(gpu=label, service="api").set(round_ * 1000 + 1)
            publish(registry, job="gpu", textfile_dir=textfiles)
    finally:
        stop.set()
        reader.join(timeout=30)

    assert problems == []
    assert sorted(p.name for p in textfiles.iterdir()) == ["opsctl_gpu.prom"]


def test_missing_textfile_folder_is_a_clear_failure(tmp_path: Path) -> None:
    """A folder that does not exist is not created: the error names it."""
    missing = tmp_path / "node_exporter" / "textfiles"

    with pytest.raises(OperationFailedError) as caught:
        publish(new_registry(), job="verify", textfile_dir=missing)

    assert f"{str(missing)!r} does not exist" in caught.value.message
    assert not missing.exists()


def test_textfile_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A file where the folder should be is named as such."""
    not_a_folder = tmp_path / "textfiles"
    not_a_folder.write_text("x")

    with pytest.raises(OperationFailedError, match="is not a folder"):
        publish(new_registry(), job="verify", textfile_dir=not_a_folder)


def test_textfile_that_is_a_folder_is_never_replaced(textfiles: Path) -> None:
    """Something other than a regular file at the textfile's path is refused, untouched."""
    (textfiles / "opsctl_verify.prom").mkdir()

    with pytest.raises(UsageError, match="not a regular file"):
        publish(new_registry(), job="verify", textfile_dir=textfiles)

    assert (textfiles / "opsctl_verify.prom").is_dir()


def test_push_and_textfile_together(pushgateway: Pushgateway, textfiles: Path) -> None:
    """Both targets given: both get the same figures."""
    publish(
        _verify_registry(success=True, statuses={"pass": 1}),
        job="verify",
        push_gateway=pushgateway.url,
        textfile_dir=textfiles,
    )

    assert [s.value for s in pushgateway.samples("opsctl_verify_success")] == [1]
    assert (
        _parse((textfiles / "opsctl_verify.prom").read_text())[("opsctl_verify_success", ())] == 1
    )
