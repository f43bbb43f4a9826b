"""The per-hop breakdown from Prometheus figures (a stand-in Prometheus on 127.0.0.1)."""

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.breakdown import (
    BETWEEN,
    CLIENT_SIDE,
    POLLING,
    QUEUED,
    client_mean,
    e2e_mean,
    markdown,
    measure,
    measure_jobs,
    write,
)

# increase() over the run, by metric: 1000 client requests through api -> predictor.
FIGURES = {
    "mlsp_http_request_duration_seconds_sum": {"api": 3.0, "predictor": 0.05},
    "mlsp_http_request_duration_seconds_count": {"api": 1000.0},
    "mlsp_grpc_request_duration_seconds_sum": {"predictor": 0.5},
}
# Time on peers, by (service, peer): the calls', and (where kept) each request's own view.
PEER_FIGURES = {"mlsp_outbound_duration_seconds_sum": {("api", "predictor"): 2.0}}
STAGES = {("api", "decode"): 0.1, ("predictor", "inference"): 0.3}
ROUTES = {("POST", "/predict"): 1000.0}  # what the api answered, by method and route
# An async run of 500 jobs, by (metric, label filter): the worker's stages, the api's submits.
JOB_FIGURES = {
    ("mlsp_stage_duration_seconds_count", 'stage="job"'): {"worker": 500.0},
    ("mlsp_stage_duration_seconds_sum", 'stage="queue_wait"'): {"worker": 2.5},
    ("mlsp_stage_duration_seconds_sum", 'stage="job"'): {"worker": 1.0},
    ("mlsp_http_request_duration_seconds_sum", 'method="POST"'): {"api": 1.5},
}


class FakePrometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        expr = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
        by_filter = [key for key in JOB_FIGURES if f"{key[0]}{{" in expr and key[1] in expr]
        if expr.startswith("sum by (route, method)"):
            result = [
                {"metric": {"route": route, "method": method}, "value": [0, str(n)]}
                for (method, route), n in ROUTES.items()
            ]
        elif by_filter:
            figures = JOB_FIGURES[by_filter[0]]
            result = [{"metric": {"service": s}, "value": [0, str(v)]} for s, v in figures.items()]
        elif "mlsp_stage_duration_seconds_sum" in expr:
            result = [
                {"metric": {"service": s, "stage": st}, "value": [0, str(v)]}
                for (s, st), v in STAGES.items()
            ]
        elif "sum by (peer, service)" in expr:
            metric = next((name for name in PEER_FIGURES if name in expr), None)
            result = [
                {"metric": {"service": s, "peer": p}, "value": [0, str(v)]}
                for (s, p), v in PEER_FIGURES.get(metric, {}).items()
            ]
        else:
            metric = next((name for name in FIGURES if name in expr), None)
            result = [
                {"metric": {"service": s}, "value": [0, str(v)]}
                for s, v in FIGURES.get(metric, {}).items()
            ]
        body = json.dumps({"status": "success", "data": {"result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_segments_split_the_client_mean(prometheus: str, tmp_path: Path) -> None:
    result = measure(prometheus, "sync", client_mean_ms=4.0, start=0, end=60)
    assert result.requests == 1000
    # api: 3 s inside, 2 s waiting on the predictor -> 1 ms own per request.
    assert result.segments["api"] == pytest.approx(1.0)
    assert result.segments["predictor"] == pytest.approx(0.55)
    assert result.segments[BETWEEN] == pytest.approx(1.45)  # 2 s of calls - 0.55 s inside
    assert result.segments[CLIENT_SIDE] == pytest.approx(1.0)
    assert result.attributed_ms == pytest.approx(3.0)
    assert result.note == ""  # one kind of request only
    assert result.stages == {"api: decode": 0.1, "predictor: inference": pytest.approx(0.3)}
    write([result], str(tmp_path / "sync"))
    assert json.loads((tmp_path / "sync_breakdown.json").read_text())[0]["pattern"] == "sync"
    assert "| sync | 4.000 | 75% |" in (tmp_path / "sync_breakdown.md").read_text()
    assert (tmp_path / "sync_breakdown.png").read_bytes()[:4] == b"\x89PNG"


def test_shared_calls_count_each_requests_own_time_and_their_wait(
    prometheus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Coalesced: the calls took 1 s in all, but the 1000 requests spent 2.5 s on the
    # predictor (several rode each call), 0.8 s of it waiting for their call to leave.
    monkeypatch.setitem(
        PEER_FIGURES["mlsp_outbound_duration_seconds_sum"], ("api", "predictor"), 1.0
    )
    monkeypatch.setitem(
        PEER_FIGURES, "mlsp_outbound_request_duration_seconds_sum", {("api", "predictor"): 2.5}
    )
    monkeypatch.setitem(FIGURES, "mlsp_outbound_queue_seconds_sum", {"api": 0.8})
    result = measure(prometheus, "sync", client_mean_ms=4.0, start=0, end=60)
    assert result.segments["api"] == pytest.approx(0.5)  # 3 s inside - 2.5 s on the peer
    assert result.segments[QUEUED] == pytest.approx(0.8)
    assert result.segments[BETWEEN] == pytest.approx(2.5 - 0.8 - 0.55)
    assert result.attributed_ms == pytest.approx(3.0)


def test_client_mean_weighs_every_request_entry(tmp_path: Path, stats_csv) -> None:
    prefix = stats_csv.write(tmp_path / "run", stats_csv.PREDICT, stats_csv.TOTAL)
    assert client_mean(prefix) == 4.8
    hits = stats_csv.PREDICT.replace("POST /predict,1000", "POST /predict [hit],3000").replace(
        ",4.8,", ",1.2,"
    )
    both = stats_csv.write(tmp_path / "cache", stats_csv.PREDICT, hits, stats_csv.TOTAL)
    assert client_mean(both) == pytest.approx((1000 * 4.8 + 3000 * 1.2) / 4000)


def test_a_jobs_time_splits_into_submit_queue_worker_and_polling(prometheus: str) -> None:
    result = measure_jobs(prometheus, "async", e2e_mean_ms=20.0, start=0, end=60)
    assert result.pattern == "async (job)"
    assert result.requests == 500
    assert result.segments["api (submit)"] == pytest.approx(3.0)
    assert result.segments["queue wait"] == pytest.approx(5.0)
    assert result.segments["worker"] == pytest.approx(2.0)
    assert result.segments[POLLING] == pytest.approx(10.0)
    assert result.attributed_ms == pytest.approx(10.0)


def test_e2e_mean_is_read_only_when_the_run_has_jobs(tmp_path: Path, stats_csv) -> None:
    plain = stats_csv.write(tmp_path / "plain", stats_csv.PREDICT, stats_csv.TOTAL)
    assert e2e_mean(plain) is None
    e2e = "E2E,job completed,900,0,70,72.5,20,300,0.0,9.0,0.0" + ",70" * 11
    jobs = stats_csv.write(tmp_path / "jobs", stats_csv.PREDICT, e2e, stats_csv.TOTAL)
    assert e2e_mean(jobs) == 72.5
    assert client_mean(jobs) == 4.8


def test_mixed_traffic_is_said(prometheus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ROUTES, ("POST", "/predict"), 750.0)
    monkeypatch.setitem(ROUTES, ("POST", "/jobs"), 250.0)
    result = measure(prometheus, "parallel", client_mean_ms=4.0, start=0, end=60)
    assert result.note.startswith("mixed traffic (POST /jobs 25%, POST /predict 75%)")
    assert "parallel: mixed traffic" in markdown([result])


def test_calls_outside_requests_are_said(prometheus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        PEER_FIGURES["mlsp_outbound_duration_seconds_sum"], ("api", "predictor"), 4.0
    )  # > 3 s inside
    result = measure(prometheus, "parallel", client_mean_ms=4.0, start=0, end=60)
    assert "calls its peers outside requests" in result.note


def test_the_pressure_on_the_api_is_shown(prometheus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FIGURES, "mlsp_http_requests_shed_total", {"api": 7.0})
    monkeypatch.setitem(FIGURES, "mlsp_http_requests_in_flight", {"api": 12.0})
    result = measure(prometheus, "sync", client_mean_ms=4.0, start=0, end=60)
    assert result.pressure == {"requests shed": 7.0, "most in flight": 12.0}
    assert "sync load on the api: requests shed 7, most in flight 12" in markdown([result])
