"""Exact mixed-precision HMC: a low-precision gradient drives leapfrog, an exact float32 energy decides.

Leapfrog with any deterministic force field F(theta) is volume-preserving and, with the
momentum flipped, its own inverse. Metropolis-Hastings with the exact Hamiltonian
H = U(theta) + |r|^2 / 2 therefore leaves exp(-H) invariant whatever F is: a force that only
approximates grad U lowers the acceptance rate, never the correctness. So the gradient may be
computed with TF32 or bfloat16 matrix products (tensor cores: several times the float32
throughput), while the potential energy of the accept test must be exact float32: over 60,000
images the bfloat16 energy of a 784-512-10 MLP is off by about a nat at the PyTorch-default
init and by tens of nats at posterior-sized weights (DESIGN.md), which would change what is
sampled.

``MixedPrecisionHMC`` is NumPyro's ``HMC`` with one change in ``sample``: the leapfrog
integrator (NumPyro's ``velocity_verlet``) differentiates ``gradient_model``, a copy of the
model whose matmuls are low-precision, and the proposal's exact potential is computed once at
the end of the trajectory (one float32 forward pass per ``num_steps`` gradients); the start's
exact potential is carried over in the state. ``z_grad`` in the state is the force
(low-precision gradient) at ``z``. Without ``gradient_model`` every step is NumPyro's: the
samples equal ``numpyro.infer.HMC``'s bit for bit (tested).

Matmul precisions (``matmul``): on GPUs the products run on tensor cores through JAX's dot
algorithms ``TF32_TF32_F32`` and ``BF16_BF16_F32`` (inputs rounded, float32 accumulation), in
the forward and backward passes. On CPUs (jaxlib 0.10) ``BF16_BF16_F32`` gives the exact float32
product and ``TF32_TF32_F32`` is refused (tested), so the CPU emulates them: the inputs of every
product of the forward and backward pass are rounded to 10 (TF32) or 7 (bfloat16) mantissa
bits, round-to-nearest-even, with integer bit operations that XLA cannot simplify away (DESIGN.md
notes it may drop a float32 -> bfloat16 -> float32 convert pair), and multiplied in float32.

Reversibility needs a force that is a deterministic function of theta. XLA:GPU may use atomics
in reductions (bit-different results run to run); ``DETERMINISTIC_GPU_FLAG`` excludes such
ops, and ``check_deterministic_reductions`` refuses a GPU run without it. It must be in
``XLA_FLAGS`` before JAX starts its backend (``workflow/scripts/common.py`` and
``benchmarks/gpu_check.py`` set it). Its cost on GPUs has not been measured yet.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from jax import random
from numpyro.infer import HMC
from numpyro.infer.hmc import HMCState, momentum_generator
from numpyro.infer.hmc_util import IntegratorState, velocity_verlet, warmup_adapter
from numpyro.infer.util import potential_energy as model_potential_energy
from numpyro.util import cond, fori_loop, identity

from compactbnn.config.fields import GRADIENT_PRECISIONS

# Explicit mantissa bits of each precision's matmul inputs (float32 keeps its 23).
MANTISSA_BITS = {"float32": 23, "tf32": 10, "bfloat16": 7}
# JAX's dot algorithm for each low precision on GPUs: inputs rounded, float32 accumulation.
GPU_DOT_ALGORITHMS = {"tf32": "TF32_TF32_F32", "bfloat16": "BF16_BF16_F32"}
# Excludes XLA:GPU ops whose results may differ run to run (atomics in reductions), keeping
# autotuning; --xla_gpu_deterministic_ops=true implies it (and also turns autotuning off).
DETERMINISTIC_GPU_FLAG = "--xla_gpu_exclude_nondeterministic_ops=true"
_DETERMINISTIC_GPU_FLAGS = (DETERMINISTIC_GPU_FLAG, "--xla_gpu_deterministic_ops=true")
MAX_DELTA_ENERGY = 1000.0  # NumPyro's threshold for calling a transition divergent


def check_gradient_precision(precision: str) -> str:
    if precision not in GRADIENT_PRECISIONS:
        raise ValueError(f"gradient_precision must be one of {GRADIENT_PRECISIONS}, got {precision!r}")
    return precision


# ---------------------------------------------------------------------------------------------
# Low-precision matrix products


def round_mantissa(x: jax.Array, bits: int) -> jax.Array:
    """float32 ``x`` rounded to ``bits`` explicit mantissa bits, round-to-nearest-even (as a cast to bfloat16 for 7).

    Integer arithmetic on the bit pattern, so XLA cannot fold it away as it folds a
    float32 -> bfloat16 -> float32 convert pair on CPUs. NaN stays NaN; values that round past
    the largest finite number become infinite, as in a real cast.
    """
    if not 1 <= bits <= 23:
        raise ValueError(f"bits must lie in 1..23, got {bits}")
    if bits == 23:
        return x
    x = jnp.asarray(x, jnp.float32)
    shift = 23 - bits
    u = jax.lax.bitcast_convert_type(x, jnp.uint32)
    u = u + jnp.uint32((1 << (shift - 1)) - 1) + ((u >> shift) & jnp.uint32(1))
    u = u & jnp.uint32((0xFFFFFFFF << shift) & 0xFFFFFFFF)
    return jnp.where(jnp.isnan(x), x, jax.lax.bitcast_convert_type(u, jnp.float32))


def _emulated_matmul(bits: int) -> Callable:
    """a @ b (2-D) with the inputs of the product and of both gradient products rounded to ``bits`` mantissa bits."""
    highest = jax.lax.Precision.HIGHEST

    def rounded_product(a, b):
        return jnp.matmul(round_mantissa(a, bits), round_mantissa(b, bits), precision=highest)

    @jax.custom_vjp
    def product(a, b):
        return rounded_product(a, b)

    def forward(a, b):
        ra, rb = round_mantissa(a, bits), round_mantissa(b, bits)
        return jnp.matmul(ra, rb, precision=highest), (ra, rb)

    def backward(residuals, g):
        ra, rb = residuals
        rg = round_mantissa(g, bits)
        return jnp.matmul(rg, rb.T, precision=highest), jnp.matmul(ra.T, rg, precision=highest)

    product.defvjp(forward, backward)
    return product


def matmul(precision: str, backend: str | None = None) -> Callable | None:
    """The product ``(a, b) -> a @ b`` of 2-D float32 arrays in ``precision``; None for float32 (the plain ``@``).

    GPU (``backend`` "gpu"/"cuda"/"rocm", default JAX's): JAX's dot algorithm ``TF32_TF32_F32``
    or ``BF16_BF16_F32``. Elsewhere: the CPU emulation (``round_mantissa`` on every input of
    the forward and backward products).
    """
    check_gradient_precision(precision)
    if precision == "float32":
        return None
    backend = jax.default_backend() if backend is None else backend
    if backend in ("gpu", "cuda", "rocm"):
        return partial(_gpu_matmul, algorithm=GPU_DOT_ALGORITHMS[precision])
    return _emulated_matmul(MANTISSA_BITS[precision])


def _gpu_matmul(a, b, algorithm):
    return jnp.matmul(a, b, precision=algorithm)


# ---------------------------------------------------------------------------------------------
# GPU determinism


def check_deterministic_reductions(backend: str | None = None) -> None:
    """Raise on a GPU unless XLA_FLAGS holds the flag that makes reductions deterministic.

    Mixed-precision HMC relies on the force being a deterministic function of theta; XLA reads
    XLA_FLAGS once, when JAX starts its backend, so the flag must be set before that.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend not in ("gpu", "cuda", "rocm"):
        return
    flags = os.environ.get("XLA_FLAGS", "").split()
    if not any(flag in flags for flag in _DETERMINISTIC_GPU_FLAGS):
        raise RuntimeError(
            f"mixed-precision HMC on a GPU needs deterministic reductions: set XLA_FLAGS={DETERMINISTIC_GPU_FLAG} "
            "before JAX starts (set_deterministic_reductions() before the first JAX computation)"
        )


def set_deterministic_reductions() -> None:
    """Add ``DETERMINISTIC_GPU_FLAG`` to XLA_FLAGS (effective only before JAX starts its backend; harmless on CPUs)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if not any(flag in flags for flag in _DETERMINISTIC_GPU_FLAGS):
        os.environ["XLA_FLAGS"] = " ".join(flags + [DETERMINISTIC_GPU_FLAG])


# ---------------------------------------------------------------------------------------------
# The kernel


class MixedPrecisionHMC(HMC):
    """NumPyro's fixed-step HMC whose leapfrog follows ``gradient_model``'s gradient and whose accept test is exact.

    Args:
      model: the NumPyro model; its potential (float32) is the exact energy of the accept test.
      gradient_model: a model with the same latent sites whose potential's gradient is the
        leapfrog force (e.g. ``model`` with low-precision matmuls), or None: the gradient of
        ``model`` itself, i.e. NumPyro's HMC unchanged.
      step_size, num_steps: each leapfrog step is exactly ``step_size`` (no trajectory length).
      adapt_step_size, target_accept_prob: NumPyro's dual averaging during warmup (mass matrix
        fixed at the identity, as in hamiltorch).

    The state is NumPyro's ``HMCState``: ``potential_energy`` the exact potential at ``z``,
    ``z_grad`` the force at ``z``, ``energy`` the exact Hamiltonian of the last accept test.
    """

    def __init__(self, model, gradient_model=None, *, step_size: float, num_steps: int, adapt_step_size: bool = False,
                 target_accept_prob: float = 0.8):
        super().__init__(model, step_size=step_size, num_steps=num_steps, trajectory_length=None,
                         adapt_step_size=adapt_step_size, adapt_mass_matrix=False, dense_mass=False,
                         target_accept_prob=target_accept_prob)
        self._gradient_model = gradient_model
        self._num_warmup = 0
        self._warmup_update = None

    @property
    def gradient_model(self):
        return self._gradient_model

    def _force_potential(self, model_args, model_kwargs, exact):
        if self._gradient_model is None:
            return exact
        return lambda z: model_potential_energy(self._gradient_model, model_args, model_kwargs, z)

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs={}):
        state = super().init(rng_key, num_warmup, init_params=init_params, model_args=model_args, model_kwargs=model_kwargs)
        # NumPyro's warmup update, rebuilt with init's settings (its own lives in a closure).
        self._num_warmup = num_warmup
        self._warmup_update = warmup_adapter(num_warmup, adapt_step_size=self._adapt_step_size, adapt_mass_matrix=False,
                                             dense_mass=[], target_accept_prob=self._target_accept_prob,
                                             regularize_mass_matrix=getattr(self, "_regularize_mass_matrix", True))[1]
        if self._gradient_model is None:
            return state
        # The force at the start is the gradient model's, so that every leapfrog step of every
        # trajectory follows one deterministic force field; the potential stays exact.
        force = jax.grad(self._force_potential(model_args, model_kwargs, None))
        z_grad = force(state.z) if jnp.ndim(state.i) == 0 else jax.vmap(force)(state.z)
        return state._replace(z_grad=z_grad)

    def sample(self, state, model_args, model_kwargs):
        """One HMC transition: ``num_steps`` leapfrog steps with the force, then the exact accept test.

        Mirrors NumPyro's ``sample_kernel`` and ``_hmc_next`` (same keys, same arithmetic) but
        for where the proposal's potential comes from.
        """
        if self._warmup_update is None:
            raise RuntimeError("init must be called before sample")
        if jnp.ndim(state.i) != 0:  # chains vectorised by init: one transition per chain
            return jax.vmap(lambda s: self.sample(s, model_args, model_kwargs))(state)
        model_kwargs = {} if model_kwargs is None else model_kwargs
        exact = self._potential_fn_gen(*model_args, **model_kwargs)
        kinetic = self._kinetic_fn
        rng_key, key_momentum, key_transition = random.split(state.rng_key, 3)
        r = momentum_generator(state.z, state.adapt_state.mass_matrix_sqrt, key_momentum)
        step_size, inverse_mass = state.adapt_state.step_size, state.adapt_state.inverse_mass_matrix

        _, leapfrog = velocity_verlet(self._force_potential(model_args, model_kwargs, exact), kinetic)
        start = IntegratorState(state.z, r, state.potential_energy, state.z_grad)
        end = fori_loop(0, self._num_steps, lambda i, s: leapfrog(step_size, inverse_mass, s), start)
        if self._gradient_model is not None:
            # The integrator's energy is the gradient model's; the accept test needs the exact one.
            end = end._replace(potential_energy=exact(end.z))

        energy_old = start.potential_energy + kinetic(inverse_mass, start.r)
        energy_new = end.potential_energy + kinetic(inverse_mass, end.r)
        delta = energy_new - energy_old
        delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
        accept_prob = jnp.clip(jnp.exp(-delta), None, 1.0)
        diverging = delta > MAX_DELTA_ENERGY
        transition = random.bernoulli(key_transition, accept_prob)
        chosen, energy = cond(transition, (end, energy_new), identity, (start, energy_old), identity)

        update = self._warmup_update
        adapt_state = cond(state.i < self._num_warmup, (state.i, accept_prob, chosen, state.adapt_state),
                           lambda args: update(*args), state.adapt_state, identity)
        itr = state.i + 1
        n = jnp.where(state.i < self._num_warmup, itr, itr - self._num_warmup)
        mean_accept_prob = state.mean_accept_prob + (accept_prob - state.mean_accept_prob) / n
        return HMCState(itr, chosen.z, chosen.z_grad, chosen.potential_energy, energy, None, state.trajectory_length,
                        self._num_steps, accept_prob, mean_accept_prob, diverging, adapt_state, rng_key)
