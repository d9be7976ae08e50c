"""The profiled timeline's communication figures (ftdecide.probe.timeline): exact seconds on hand-made
kernel lists, and invariants on random ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftdecide.probe.timeline import Kernel, kernels_from_trace, overlap

K = Kernel


@pytest.mark.parametrize(
    "kernels, comm, exposed, compute, span",
    [
        pytest.param([K("ncclKernel_AllGather", 0, 100)], 100, 100, 0, 100, id="alone-all-exposed"),
        pytest.param([K("ncclKernel_AllGather", 0, 100), K("gemm", 0, 100)], 100, 0, 100, 100, id="fully-hidden"),
        pytest.param([K("ncclDevKernel_ReduceScatter", 50, 100), K("gemm", 0, 100)], 100, 50, 100, 150, id="half-hidden"),
        pytest.param(
            [K("nccl_a", 0, 100), K("nccl_b", 50, 100), K("gemm", 20, 10), K("gemm", 120, 10)],
            150,
            130,
            20,
            150,
            id="overlapping-comms-merged",
        ),
        pytest.param([K("gemm", 0, 10), K("softmax", 5, 10)], 0, 0, 15, 15, id="no-comm"),
        pytest.param([], 0, 0, 0, 0, id="empty"),
    ],
)
def test_overlap_table(kernels, comm, exposed, compute, span):
    got = overlap(kernels)
    assert got == pytest.approx({"comm_s": comm / 1e6, "exposed_comm_s": exposed / 1e6, "compute_s": compute / 1e6, "span_s": span / 1e6})


def test_kernels_come_from_the_trace_kernel_events_only():
    trace = {
        "traceEvents": [
            {"cat": "kernel", "name": "ncclDevKernel_AllReduce", "ts": 10.0, "dur": 5.0},
            {"cat": "cpu_op", "name": "aten::mm", "ts": 0.0, "dur": 50.0},
            {"cat": "kernel", "name": "sm90_gemm", "ts": 12.0, "dur": 1.0},
            {"cat": "kernel", "name": "no_times"},
        ]
    }
    ks = kernels_from_trace(trace)
    assert ks == [K("ncclDevKernel_AllReduce", 10.0, 5.0), K("sm90_gemm", 12.0, 1.0)]
    assert [k.comm for k in ks] == [True, False]


kernel = st.builds(
    Kernel,
    st.sampled_from(["nccl_allgather", "gemm", "ncclReduceScatter", "add"]),
    st.floats(0, 1e4, allow_nan=False),
    st.floats(0, 1e3, allow_nan=False),
)


@given(st.lists(kernel, max_size=30))
def test_exposed_never_exceeds_comm_and_all_fits_in_the_span(ks):
    got = overlap(ks)
    assert 0 <= got["exposed_comm_s"] <= got["comm_s"] + 1e-12
    assert got["compute_s"] <= got["span_s"] + 1e-12
    assert got["comm_s"] <= got["span_s"] + 1e-12
    # what is exposed and what compute covers never add up to more than the span
    assert got["exposed_comm_s"] + got["compute_s"] <= got["span_s"] + 1e-9
