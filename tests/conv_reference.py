"""Plain float64 numpy definitions of convolution and its gradients (the test oracle)."""

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def out_size(n, f, s, p, d):
    return (n + 2 * p - d * (f - 1) - 1) // s + 1


def _windows(xp, fy, fx, Ho, Wo, s, d):
    sh, sw = s
    dh, dw = d
    return xp[:, :, fy * dh : fy * dh + sh * (Ho - 1) + 1 : sh,
              fx * dw : fx * dw + sw * (Wo - 1) + 1 : sw]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg, Fh, Fw = w.shape
    Kg = K // groups
    Ho, Wo = out_size(H, Fh, s[0], p[0], d[0]), out_size(W, Fw, s[1], p[1], d[1])
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    y = np.zeros((N, K, Ho, Wo))
    for fy in range(Fh):
        for fx in range(Fw):
            win = _windows(xp, fy, fx, Ho, Wo, s, d)
            for g in range(groups):
                y[:, g * Kg : (g + 1) * Kg] += np.einsum(
                    "nchw,kc->nkhw", win[:, g * Cg : (g + 1) * Cg],
                    w[g * Kg : (g + 1) * Kg, :, fy, fx]
                )
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def conv2d_grads(x, w, dy, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) of sum(conv2d(x, w) * dy)."""
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    dy = dy.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg, Fh, Fw = w.shape
    Kg = K // groups
    Ho, Wo = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for fy in range(Fh):
        for fx in range(Fw):
            win = _windows(xp, fy, fx, Ho, Wo, s, d)
            dwin = _windows(dxp, fy, fx, Ho, Wo, s, d)  # a view: += writes through
            for g in range(groups):
                ks, cs = slice(g * Kg, (g + 1) * Kg), slice(g * Cg, (g + 1) * Cg)
                dw[ks, :, fy, fx] += np.einsum("nkhw,nchw->kc", dy[:, ks], win[:, cs])
                dwin[:, cs] += np.einsum("nkhw,kc->nchw", dy[:, ks], w[ks, :, fy, fx])
    dx = dxp[:, :, p[0] : p[0] + H, p[1] : p[1] + W]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def tiled_conv2d(x, w, b=None, stride=1, padding=0, per_position_bias=False):
    """w: [Th, Tw, K, C, Fh, Fw]; position (i, j) uses bank (i % Th, j % Tw)."""
    s, p = _pair(stride), _pair(padding)
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    Th, Tw, K, C, Fh, Fw = w.shape
    N, _, H, W = x.shape
    Ho, Wo = out_size(H, Fh, s[0], p[0], 1), out_size(W, Fw, s[1], p[1], 1)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    y = np.zeros((N, K, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * s[0] : i * s[0] + Fh, j * s[1] : j * s[1] + Fw]
            y[:, :, i, j] = np.einsum("ncyx,kcyx->nk", patch, w[i % Th, j % Tw])
    if b is not None:
        b = b.astype(np.float64)
        y += b[None] if per_position_bias else b[None, :, None, None]
    return y
