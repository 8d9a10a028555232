"""Process environment for fast CPU math, set *before* ``import paddle`` (no paddle import here).

Paddle's CPU wheels do matrix products (hence dygraph convolutions: im2col + GEMM, forward and
backward) with Intel MKL (``paddle/libs/libmklml_intel.so``). That MKL picks its kernels by CPU
vendor, and on AMD processors it takes a generic SSE path even when the CPU has AVX2/FMA: a
2048^3 float32 matmul runs at about a third of the speed of the AVX2 path here (AMD EPYC). The
long-standing MKL switch ``MKL_DEBUG_CPU_TYPE=5`` selects the AVX2 kernels; MKL reads it when the
library loads, so it must be in the environment before paddle is imported (setting it later
does nothing). Results differ from the generic path only by float rounding (gradients agree to
~1e-5 relative, the same as between 1 and 2 threads).

It is set only on AMD CPUs that report AVX2 and FMA, and never over a value the user set.
``PPCLS_NO_MKL_AVX2=1`` turns it off. Intel CPUs need nothing (MKL picks AVX2/AVX-512 itself);
oneDNN (Paddle Inference, the engine's fast evaluation) dispatches by ISA and is unaffected.
"""
import os


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read(200_000)
    except OSError:
        return "", set()
    vendor, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        if vendor and flags:
            break
    return vendor, flags


def mkl_avx2_switch(environ=None, cpuinfo=None):
    """``("MKL_DEBUG_CPU_TYPE", "5")`` when it should be set on this machine, else None."""
    environ = os.environ if environ is None else environ
    if "MKL_DEBUG_CPU_TYPE" in environ or environ.get("PPCLS_NO_MKL_AVX2", "") not in ("", "0"):
        return None
    vendor, flags = cpuinfo if cpuinfo is not None else _cpuinfo()
    if vendor == "AuthenticAMD" and {"avx2", "fma"} <= flags:
        return ("MKL_DEBUG_CPU_TYPE", "5")
    return None


def prepare_cpu_env(environ=None, cpuinfo=None):
    """Set the variables above in ``environ`` (default ``os.environ``); call before importing
    paddle. Returns the dict of what was set (empty when nothing was needed)."""
    environ = os.environ if environ is None else environ
    done = {}
    switch = mkl_avx2_switch(environ, cpuinfo)
    if switch:
        environ[switch[0]] = switch[1]
        done[switch[0]] = switch[1]
    return done

