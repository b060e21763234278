"""Output-size arithmetic of convolution and pooling windows (pure Python)."""

from __future__ import annotations

import numbers

__all__ = ["conv_output_size", "window_remainder"]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"conv_output_size: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"conv_output_size: {name} must be >= {minimum}, got {value}")
    return int(value)


def _is_pair(v) -> bool:
    return isinstance(v, (tuple, list))


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1, strict=False):
    """Output length of a convolution or pooling window sliding over ``n`` input positions.

    ``floor((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``, PyTorch's
    arithmetic: positions that do not fill a last window are dropped. With ``strict=True`` a
    window that does not tile the input exactly raises ValueError explaining the arithmetic
    (the lecture's "input 7, filter 3, stride 3: (7 - 3)/3 + 1 = 2.33, does not fit").

    Any argument may be an (h, w) pair; the result is then a pair.

    Raises
    ------
    ValueError
        stride < 1, padding < 0, dilation < 1, kernel_size < 1, a (dilated) kernel larger than
        the padded input, or (``strict``) a window that does not tile the input.
    """
    args = (n, kernel_size, stride, padding, dilation)
    if any(_is_pair(a) for a in args):
        pairs = [tuple(a) if _is_pair(a) else (a, a) for a in args]
        for a in pairs:
            if len(a) != 2:
                raise ValueError(f"conv_output_size: expected ints or (h, w) pairs, got {args}")
        return tuple(conv_output_size(*(p[i] for p in pairs), strict=strict) for i in range(2))
    n = _check_int("n", n, 0)
    k = _check_int("kernel_size", kernel_size, 1)
    s = _check_int("stride", stride, 1)
    p = _check_int("padding", padding, 0)
    d = _check_int("dilation", dilation, 1)
    k_eff = d * (k - 1) + 1
    padded = n + 2 * p
    if k_eff > padded:
        what = f"filter {k}" + (f" (dilation {d}: spans {k_eff})" if d != 1 else "")
        raise ValueError(
            f"conv_output_size: {what} is larger than the input {n}"
            + (f" padded by {p} on each side ({padded})" if p else "")
        )
    if strict and (padded - k_eff) % s:
        pad_txt = f" + 2*{p}" if p else ""
        desc = f"input {n}, filter {k}, stride {s}"
        if p:
            desc += f", padding {p}"
        if d != 1:
            desc += f", dilation {d} (spans {k_eff})"
        raise ValueError(
            f"{desc}: ({n}{pad_txt} - {k_eff})/{s} + 1 = {(padded - k_eff) / s + 1:.2f}, "
            f"does not fit"
        )
    return (padded - k_eff) // s + 1


def window_remainder(n, kernel_size, stride=1, padding=0, dilation=1) -> int:
    """Input positions (of the padded input) that no window covers at the end: 0 when the
    windows tile the input exactly."""
    k_eff = dilation * (kernel_size - 1) + 1
    return (n + 2 * padding - k_eff) % stride
