"""The version-shift variant: tasks whose natural pre-2024 numpy code no longer runs on numpy 2.x.

NumPy 2.0 (June 2024, after the default model's training data) removed aliases and functions that
years of public code use: ``np.trapz``, ``np.in1d``, ``np.product``, ``np.float_``, ``np.NaN``,
``ndarray.ptp``, ``ndarray.tostring``, ``np.array(..., copy=False)`` semantics... Each task here has a
solution that uses the current API (`apis`) and lists the removed spellings a model is likely to
remember (`old`). With the current numpy docs retrieved, a model can write the new spelling; from
memory alone it tends to write the old one, which raises AttributeError/ValueError. Needs numpy>=2.0.

Entries are ``S(entry, params, description, body, tests, apis, old)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class S:
    entry: str
    params: str
    doc: str
    body: str
    tests: tuple[str, ...]
    apis: tuple[str, ...]
    old: tuple[str, ...]


A = "np.array"

SHIFT_TASKS: list[S] = [
    S("area_under_curve", "y, x", "Integrate the samples `y` over the points `x` with the composite trapezoidal rule.",
      "return float(np.trapezoid(y, x))",
      ("candidate([0, 1, 2], [0, 1, 2]) == 2.0", "candidate([1, 1], [0, 3]) == 3.0"), ("trapezoid",), ("trapz",)),
    S("members_mask", "values, allowed", "Return a boolean array telling which elements of `values` occur in `allowed`.",
      "return np.isin(values, allowed)",
      ("candidate([1, 2, 3], [2, 5]).tolist() == [False, True, False]",), ("isin",), ("in1d",)),
    S("as_float_array", "values", "Convert `values` to a float64 numpy array.",
      "return np.asarray(values, dtype=np.float64)",
      ("candidate([1, 2]).dtype == np.float64", "candidate([1, 2]).tolist() == [1.0, 2.0]"), ("asarray", "float64"),
      ("asfarray",)),
    S("common_dtype_name", "arrays", "Return the name of the dtype all the given arrays would be promoted to.",
      "return np.result_type(*arrays).name",
      ("candidate([np.zeros(2, np.int8), np.zeros(2, np.float32)]) == 'float32'",
       "candidate([np.zeros(1, np.int16), np.zeros(1, np.uint16)]) == 'int32'"), ("result_type",), ("find_common_type",)),
    S("sort_columns", "a", "Return a copy of the 2-D array `a` with every column sorted ascending (sort along the first axis).",
      "return np.sort(a, axis=0)",
      (f"candidate({A}([[3, 1], [1, 2]])).tolist() == [[1, 1], [3, 2]]",), ("sort",), ("msort",)),
    S("nan_filled", "n", "Return a float array of length `n` filled with NaN.",
      "return np.full(n, np.nan)",
      ("np.isnan(candidate(3)).all() and len(candidate(3)) == 3",), ("full", "nan"), ("NaN", "NAN")),
    S("cap_to_infinity", "a, limit", "Return a float copy of `a` where values above `limit` become positive infinity.",
      "a = np.asarray(a, dtype=float)\n    return np.where(a > limit, np.inf, a)",
      ("candidate([1, 5, 9], 4).tolist() == [1.0, float('inf'), float('inf')]",), ("where", "inf"),
      ("Inf", "PINF", "Infinity", "infty")),
    S("float64_type", "", "Return numpy's scalar type for 64-bit floating point numbers.",
      "return np.float64",
      ("candidate() is np.float64",), ("float64",), ("float_",)),
    S("complex_array", "real, imag", "Combine real and imaginary parts into a complex128 array.",
      "return np.asarray(real, dtype=np.complex128) + 1j * np.asarray(imag, dtype=np.float64)",
      ("candidate([1, 2], [3, 4]).tolist() == [1 + 3j, 2 + 4j]", "candidate([1], [0]).dtype == np.complex128"),
      ("complex128", "asarray"), ("complex_", "cfloat")),
    S("bytes_array", "strings", "Return the strings as a numpy array of fixed-width byte strings.",
      "return np.array([s.encode() for s in strings], dtype=np.bytes_)",
      ("candidate(['ab', 'c']).tolist() == [b'ab', b'c']", "candidate(['ab']).dtype.kind == 'S'"), ("bytes_",),
      ("string_",)),
    S("unicode_array", "strings", "Return the strings as a numpy array of fixed-width unicode strings.",
      "return np.array(strings, dtype=np.str_)",
      ("candidate(['ab', 'c']).dtype.kind == 'U'",), ("str_",), ("unicode_",)),
    S("row_ranges", "a", "For a 2-D array, return the peak-to-peak range (max minus min) of every row.",
      "return np.ptp(np.asarray(a), axis=1)",
      (f"candidate({A}([[1, 5], [2, 2]])).tolist() == [4, 0]",), ("ptp",), ("ndarray.ptp",)),
    S("array_bytes", "a", "Return the raw bytes of the array's data buffer.",
      "return np.asarray(a).tobytes()",
      (f"candidate({A}([1, 2], dtype=np.uint8)) == bytes([1, 2])",), ("ndarray.tobytes",), ("ndarray.tostring",)),
    S("with_item", "a, index, value", "Return a copy of the 1-D array `a` with element `index` set to `value`.",
      "b = np.array(a, copy=True)\n    b[index] = value\n    return b",
      (f"candidate({A}([1, 2, 3]), 1, 9).tolist() == [1, 9, 3]",), ("array",), ("ndarray.itemset",)),
    S("float_view", "values", "Return `values` as a float64 array, copying only when a copy cannot be avoided.",
      "return np.asarray(values, dtype=np.float64)",
      ("candidate([1, 2]).tolist() == [1.0, 2.0]",
       "(lambda x: candidate(x) is x)(np.zeros(2))"), ("asarray",), ("array(copy=False)",)),
    S("rounded", "a, decimals", "Round the array to the given number of decimals.",
      "return np.round(a, decimals)",
      ("candidate([1.234, 5.678], 1).tolist() == [1.2, 5.7]",), ("round",), ("round_",)),
    S("all_positive", "a", "Return True if every element is strictly positive.",
      "return bool(np.all(np.asarray(a) > 0))",
      ("candidate([1, 2]) is True", "candidate([1, 0]) is False"), ("all",), ("alltrue",)),
    S("any_negative", "a", "Return True if some element is negative.",
      "return bool(np.any(np.asarray(a) < 0))",
      ("candidate([1, -2]) is True", "candidate([1, 0]) is False"), ("any",), ("sometrue",)),
    S("cumulative_product", "a", "Return the running product of the elements.",
      "return np.cumprod(a)",
      ("candidate([1, 2, 3]).tolist() == [1, 2, 6]",), ("cumprod",), ("cumproduct",)),
    S("total_product", "a", "Return the product of all elements.",
      "return np.prod(a)",
      ("candidate([2, 3, 4]) == 24",), ("prod",), ("product",)),
    S("bool_array", "values", "Return the values as a numpy boolean array.",
      "return np.array(values, dtype=np.bool_)",
      ("candidate([0, 2]).tolist() == [False, True]", "candidate([1]).dtype == np.bool_"), ("bool_",), ("bool8",)),
    S("as_matrix", "rows", "Return the nested list as a numpy matrix object.",
      "return np.asmatrix(rows)",
      ("isinstance(candidate([[1, 2]]), np.matrix) and candidate([[1, 2]]).shape == (1, 2)",), ("asmatrix",), ("mat",)),
]
