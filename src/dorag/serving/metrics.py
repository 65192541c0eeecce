"""Request counters and latency histograms in the Prometheus text exposition format (version 0.0.4).

Hand-written rather than prometheus_client: a handful of series, no extra dependency. Labels take only
known values (route templates, served model names), so a client cannot grow the series without bound.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last slot is +Inf
        self.sum = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip([*self.buckets, float("inf")], self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.n}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters; ``render()`` gives the /metrics page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.tokens: dict[str, int] = defaultdict(int)
        self.batches: dict[str, Histogram] = {}
        self.gauges: dict[str, Callable[[], float]] = {}
        self.counters: dict[str, Callable[[], float]] = {}  # counted elsewhere, read at render time

    def observe_request(self, method: str, route: str, model: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, model, status)] += 1
            hist = self.latency.setdefault((route, model), Histogram(LATENCY_BUCKETS_S))
            hist.observe(seconds)

    def observe_batch(self, adapter: str, jobs: int, seconds: float, tokens: int) -> None:
        with self._lock:
            self.tokens[adapter] += tokens
            self.batches.setdefault(adapter, Histogram(BATCH_BUCKETS)).observe(jobs)

    def render(self) -> str:
        lines = []
        with self._lock:
            lines += ["# HELP dorag_requests_total HTTP requests by route, served model and status.",
                      "# TYPE dorag_requests_total counter"]
            for (method, route, model, status), n in sorted(self.requests.items()):
                lines.append(f'dorag_requests_total{{method="{method}",route="{_escape(route)}",'
                             f'model="{_escape(model)}",status="{status}"}} {n}')
            lines += ["# HELP dorag_request_duration_seconds Time from request to the last byte of the response.",
                      "# TYPE dorag_request_duration_seconds histogram"]
            for (route, model), hist in sorted(self.latency.items()):
                lines += hist.lines("dorag_request_duration_seconds",
                                    f'route="{_escape(route)}",model="{_escape(model)}"')
            lines += ["# HELP dorag_generated_tokens_total Tokens generated, by adapter.",
                      "# TYPE dorag_generated_tokens_total counter"]
            lines += [f'dorag_generated_tokens_total{{adapter="{_escape(a)}"}} {n}' for a, n in sorted(self.tokens.items())]
            lines += ["# HELP dorag_batch_size Requests decoded together, by adapter.", "# TYPE dorag_batch_size histogram"]
            for adapter, hist in sorted(self.batches.items()):
                lines += hist.lines("dorag_batch_size", f'adapter="{_escape(adapter)}"')
            gauges, counters = dict(self.gauges), dict(self.counters)
        for name, fn in sorted(counters.items()):
            lines += [f"# TYPE {name} counter", f"{name} {fn()}"]
        for name, fn in sorted(gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {fn()}"]
        return "\n".join(lines) + "\n"
