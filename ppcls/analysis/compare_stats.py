"""Statistics of a comparison over seeds: mean, spread, and Welch's t interval of a difference.

Pure Python (no SciPy): the Student t quantile comes from the regularized incomplete beta
function (continued fraction, modified Lentz), inverted by bisection; tests pin it to printed
t tables. Runs of different variants are treated as independent samples (Welch), even when they
share a seed: the seed fixes the data order and augmentation, but the variants' weights and
trajectories differ, so no pairing is assumed.
"""
import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass
class Described:
    """n, mean, sample standard deviation (n - 1; NaN below two values), min, max."""
    n: int
    mean: float
    std: float
    min: float
    max: float


def describe(values):
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        nan = float("nan")
        return Described(0, nan, nan, nan, nan)
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    return Described(n, mean, std, min(xs), max(xs))


# ----------------------------------------------------------------------------- Student t
def _beta_continued_fraction(a, b, x, eps=1e-15, max_terms=500):
    """The continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2))."""
    tiny = 1e-300

    def clamp(v):
        return tiny if abs(v) < tiny else v

    c, d = 1.0, 1.0 / clamp(1.0 - (a + b) * x / (a + 1.0))
    h = d
    for m in range(1, max_terms):
        even = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 / clamp(1.0 + even * d)
        c = clamp(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 / clamp(1.0 + odd * d)
        c = clamp(1.0 + odd / c)
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            break
    return h


def regularized_beta(a, b, x):
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with ``df`` (> 0, may be fractional or inf) degrees of freedom."""
    if math.isinf(df):
        return NormalDist().cdf(t)
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p, df):
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0 or math.isnan(df):
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):              # bisection: t_cdf is monotone; 200 halvings reach 1 ulp
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- Welch
@dataclass
class Difference:
    """mean(a) - mean(b) with its Welch t interval; ``low``/``high`` NaN when either side has
    fewer than two values (no spread to estimate)."""
    diff: float
    low: float
    high: float
    df: float
    confidence: float
    n_a: int
    n_b: int

    def excludes_zero(self):
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)

    def verdict(self, higher_is_better=True):
        """'better' / 'worse' (a against b) when the interval excludes zero, else
        'no clear difference'; 'too few runs' without an interval."""
        if math.isnan(self.low):
            return "too few runs"
        if not self.excludes_zero():
            return "no clear difference"
        return "better" if (self.low > 0) == higher_is_better else "worse"


def welch_interval(a, b, confidence=0.95):
    """Difference of the means of ``a`` and ``b`` with Welch's t interval: standard error
    sqrt(s_a^2 / n_a + s_b^2 / n_b), Welch-Satterthwaite degrees of freedom."""
    da, db = describe(a), describe(b)
    nan = float("nan")
    diff = da.mean - db.mean if da.n and db.n else nan
    if da.n < 2 or db.n < 2:
        return Difference(diff, nan, nan, nan, confidence, da.n, db.n)
    va, vb = da.std ** 2 / da.n, db.std ** 2 / db.n
    se2 = va + vb
    if se2 == 0.0:              # every run of both sides gave the same value: no uncertainty
        return Difference(diff, diff, diff, math.inf, confidence, da.n, db.n)
    df = se2 ** 2 / (va ** 2 / (da.n - 1) + vb ** 2 / (db.n - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(se2)
    return Difference(diff, diff - half, diff + half, df, confidence, da.n, db.n)
