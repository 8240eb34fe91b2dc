"""Devices: ``--device`` resolution and the precision of float32 products (true float32 unless asked otherwise).

On a GPU, JAX's default lets float32 matrix products run in TF32 (measured on an H100: ∞-AE scores
off by 2 % relative against float64). These tests read the precision off the traced programs, so
they check on a CPU what a GPU will compile.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.devices import MATMUL_PRECISION_ENV, DeviceError, matmul_precision, on_device, precise_jit
from cfbench.models import EASE, InfiniteAE
from cfbench.ntk import ntk
from cfbench.unit import device_description

ROOT = Path(__file__).resolve().parents[1]


def _dot_precisions(jaxpr) -> list:
    """The ``precision`` of every dot_general in ``jaxpr`` and the jaxprs nested in it."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found += _dot_precisions(sub)
    return found


def _precisions(fn, *args) -> set:
    return {str(p) for p in _dot_precisions(jax.make_jaxpr(fn)(*args).jaxpr)}


X = jnp.asarray((np.random.default_rng(0).random((6, 5)) < 0.5).astype(np.float32))


def test_precise_jit_traces_true_float32_products_by_default(monkeypatch):
    monkeypatch.delenv(MATMUL_PRECISION_ENV, raising=False)
    assert matmul_precision() == "highest"
    matmul = precise_jit(lambda a, b: a @ b.T)
    assert _precisions(matmul, X, X) == {"(Precision.HIGHEST, Precision.HIGHEST)"}
    assert _precisions(jax.jit(lambda a, b: a @ b.T), X, X) == {"None"}  # what plain jax.jit would do


@pytest.mark.parametrize(("setting", "expected"), [("high", "Precision.HIGH"), ("default", "Precision.DEFAULT")])
def test_the_environment_variable_chooses_a_faster_precision(monkeypatch, setting, expected):
    monkeypatch.setenv(MATMUL_PRECISION_ENV, setting.upper())
    assert _precisions(precise_jit(lambda a, b: a @ b.T), X, X) == {f"({expected}, {expected})"}
    with on_device("cpu"):
        assert device_description()["matmul_precision"] == setting


def test_an_unknown_precision_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(MATMUL_PRECISION_ENV, "tf16")
    with pytest.raises(DeviceError, match=r"CFBENCH_MATMUL_PRECISION='tf16'.*highest, high, default") as err:
        matmul_precision()
    assert "\n" not in str(err.value)


def test_models_and_kernels_used_directly_trace_true_float32(monkeypatch):
    """Outside a unit (no ``on_device``): the public API itself must not fall back to TF32."""
    monkeypatch.delenv(MATMUL_PRECISION_ENV, raising=False)
    highest = {"(Precision.HIGHEST, Precision.HIGHEST)"}
    assert _precisions(ntk, X, X) == highest
    support = sp.csr_matrix(np.asarray(X))
    for model in (InfiniteAE(), EASE(solver="primal"), EASE(solver="dual")):
        fitted = model.fit(support)
        assert _precisions(fitted.score, X) == highest, model
    from cfbench.models.ease import _primal_gram, _primal_solve

    assert _precisions(_primal_gram, X) == highest
    assert _precisions(lambda g: _primal_solve(g, jnp.float32(1.0)), X.T @ X) <= highest


def test_every_jit_in_cfbench_and_samplers_is_precise():
    """A bare ``jax.jit`` in cfbench's numerics would compute TF32 products on a GPU."""
    offenders = []
    for path in [*ROOT.joinpath("cfbench").rglob("*.py"), *ROOT.joinpath("samplers").rglob("*.py")]:
        if path.name == "devices.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "jit" and isinstance(node.value, ast.Name)
                    and node.value.id == "jax"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"use cfbench.devices.precise_jit instead of jax.jit: {offenders}"
