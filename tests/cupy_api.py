"""CuPy's NumPy-compatible API, as documented, kept here so tests can hold model code to it.

Taken from CuPy 13.6.0 (the v13.6.0 tag of github.com/cupy/cupy): its documentation's
"API reference" pages ``docs/source/reference/*.rst`` ("Routines (NumPy)" and "Universal functions":
every ``autosummary`` entry and every "alias of numpy.X" row), the constants, dtypes and aliases
``cupy/__init__.py`` binds (``abs``, ``max``, ``pi``, ``float64``, ...), the methods of
``cupy.random.Generator`` (``cupy/random/_generator_api.pyx``) and of ``cupy.ndarray``
(``cupy/_core/core.pyx``), and the ufunc methods ``cupy.ufunc`` implements (the rest raise
NotImplementedError). tests/test_cupy_api.py checks mini_flows against these lists;
tests/strict_backend.py offers exactly these names. Refresh them from a newer CuPy's documentation
when the project moves to it, and change CUPY_VERSION with them.
"""

from __future__ import annotations

CUPY_VERSION = "13.6.0"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


ROUTINES = _names("""
absolute add all allclose amax amin angle any append apply_along_axis arange arccos arccosh arcsin
arcsinh arctan arctan2 arctanh argmax argmin argpartition argsort argwhere around array array2string
array_equal array_equiv array_repr array_split array_str asanyarray asarray asarray_chkfinite
ascontiguousarray asfarray asfortranarray asnumpy atleast_1d atleast_2d atleast_3d average bartlett
base_repr binary_repr bincount bitwise_and bitwise_or bitwise_xor blackman broadcast
broadcast_arrays broadcast_to byte_bounds c_ can_cast cbrt ceil choose clip column_stack common_type
compress concatenate conj conjugate convolve copy copysign copyto corrcoef correlate cos cosh
count_nonzero cov cross cumprod cumsum deg2rad degrees delete diag diag_indices diag_indices_from
diagflat diagonal diff digitize divide divmod dot dsplit dstack ediff1d einsum empty empty_like
equal exp exp2 expand_dims expm1 extract eye fabs fill_diagonal fix flatiter flatnonzero flip fliplr
flipud float_power floor floor_divide fmax fmin fmod format_float_positional format_float_scientific
frexp frombuffer fromfile fromfunction fromiter fromstring full full_like gcd genfromtxt
get_array_module gradient greater greater_equal hamming hanning heaviside histogram histogram2d
histogramdd hsplit hstack hypot i0 identity imag in1d indices inner interp intersect1d invert
isclose iscomplex iscomplexobj isfinite isfortran isin isinf isnan isneginf isposinf isreal
isrealobj isscalar ix_ kaiser kron lcm ldexp left_shift less less_equal lexsort linspace load
loadtxt log log10 log1p log2 logaddexp logaddexp2 logical_and logical_not logical_or logical_xor
logspace mask_indices matmul maximum may_share_memory mean median meshgrid mgrid min_scalar_type
minimum mod modf moveaxis msort multiply nan_to_num nanargmax nanargmin nancumprod nancumsum nanmax
nanmean nanmedian nanmin nanprod nanstd nansum nanvar ndarray negative nextafter nonzero not_equal
ogrid ones ones_like outer packbits pad partition percentile piecewise place poly poly1d polyadd
polyfit polymul polysub polyval positive power prod ptp put putmask quantile r_ rad2deg radians
ravel ravel_multi_index real real_if_close reciprocal remainder repeat require reshape resize
result_type right_shift rint roll rollaxis roots rot90 round_ row_stack save savetxt savez
savez_compressed searchsorted select setdiff1d setxor1d shape shares_memory show_config sign signbit
sin sinc sinh sort sort_complex split sqrt square squeeze stack std subtract sum swapaxes take
take_along_axis tan tanh tensordot tile trace transpose trapz tri tril tril_indices
tril_indices_from trim_zeros triu triu_indices triu_indices_from true_divide trunc ufunc union1d
unique unpackbits unravel_index unwrap vander var vdot vectorize vsplit vstack where who zeros
zeros_like
""")
"""``cupy.NAME``: the documented routines and ufuncs."""

ALIASES = _names("""
MachAr dtype find_common_type finfo format_parser iinfo issctype issubclass_ issubdtype issubsctype
mintypecode obj2sctype promote_types sctype2char typename
bool_ byte cdouble cfloat complex128 complex64 complex_ complexfloating csingle double e euler_gamma
float16 float32 float64 float_ floating generic get_printoptions half index_exp inexact inf int16
int32 int64 int8 int_ intc integer intp iterable longlong nan ndindex newaxis number pi printoptions
s_ set_printoptions short signedinteger single singlecomplex ubyte uint uint16 uint32 uint64 uint8
uintc uintp ulonglong unsignedinteger ushort
AxisError Inf Infinity NAN NINF NZERO NaN PINF PZERO abs alltrue bitwise_not broadcast_shapes
cumproduct from_dlpack infty max min ndim product round size sometrue
""")
"""``cupy.NAME`` bound to NumPy's own object or to a CuPy routine under another name."""

LINALG = _names("""
cholesky det eigh eigvalsh inv lstsq matrix_power matrix_rank norm pinv qr slogdet solve svd
tensorinv tensorsolve
""")
"""``cupy.linalg.NAME``."""

RANDOM = _names("""
BitGenerator Generator MRG32k3a Philox4x3210 RandomState XORWOW beta binomial bytes chisquare choice
default_rng dirichlet exponential f gamma geometric get_random_state gumbel hypergeometric laplace
logistic lognormal logseries multinomial multivariate_normal negative_binomial noncentral_chisquare
noncentral_f normal pareto permutation poisson power rand randint randn random random_integers
random_sample ranf rayleigh sample seed set_random_state shuffle standard_cauchy
standard_exponential standard_gamma standard_normal standard_t triangular uniform vonmises wald
weibull zipf
""")
"""``cupy.random.NAME``; model code uses only ``default_rng`` (no global random state)."""

GENERATOR_METHODS = _names("""
beta binomial chisquare dirichlet exponential f gamma geometric hypergeometric integers logseries
poisson power random standard_exponential standard_gamma standard_normal uniform
""")
"""Methods of ``cupy.random.Generator``: no ``normal``, ``choice``, ``permutation`` or ``shuffle``."""

NDARRAY_ATTRIBUTES = _names("""
T all any argmax argmin argpartition argsort astype base choose clip compress conj conjugate copy
cumprod cumsum data device diagonal dot dtype dump dumps fill flags flat flatten get imag item
itemsize max mean min nbytes ndim nonzero partition prod ptp put ravel real reduced_view repeat
reshape round scatter_add scatter_max scatter_min searchsorted set shape size sort squeeze std
strides sum swapaxes take toDlpack tobytes tofile tolist trace transpose var view
""")
"""Public attributes and methods of ``cupy.ndarray`` besides the Python operators."""

UFUNC_METHODS = {
    "reduce": _names("add multiply"),
    "accumulate": _names("add multiply"),
    "reduceat": _names("add"),
    "at": _names("add subtract maximum minimum bitwise_and bitwise_or bitwise_xor"),
    "outer": ROUTINES,
}
"""The ufuncs each ufunc method is implemented for (``outer``: every ufunc)."""

NAMESPACES = {"": ROUTINES | ALIASES, "linalg": LINALG, "random": RANDOM}
"""Every name reachable as ``cupy.NAME`` (key "") or ``cupy.KEY.NAME``."""
