"""Limited-memory Broyden root finder for batched systems (the implicit backward pass).

Broyden's "good" method updates an estimate of the inverse Jacobian with one
rank-1 term per iteration, starting from -I (the Jacobian of g(x) = f(x) - x when
f is flat); at most ``threshold`` iterations, so the memory is
``threshold`` pairs of vectors per system.
"""
import torch


def _inverse_times(us, vs, x):
    """(-I + sum_i u_i v_i^T) x for every system in the batch; us, vs [B, k, n], x [B, n]."""
    return -x + torch.einsum("bkn,bk->bn", us, torch.einsum("bkn,bn->bk", vs, x))


def _times_inverse(us, vs, x):
    """x^T (-I + sum_i u_i v_i^T), returned as a column like x."""
    return -x + torch.einsum("bkn,bk->bn", vs, torch.einsum("bkn,bn->bk", us, x))


def broyden(fn, x0, threshold=30, tol=1e-6):
    """Root of ``fn`` from ``x0``; the first dimension indexes independent systems.

    Stops when every system's residual norm is at most ``tol`` times its initial
    residual norm (for the implicit backward pass: the incoming gradient's norm) or
    after ``threshold`` iterations. Returns the iterate with the smallest residual
    seen for each system.
    """
    shape, batch = x0.shape, x0.shape[0]
    x = x0.reshape(batch, -1)
    gx = fn(x.view(shape)).reshape(batch, -1)
    limit = tol * gx.norm(dim=1)
    best_x, best_residual = x, gx.norm(dim=1)
    us = x.new_zeros(batch, threshold, x.shape[1])
    vs = x.new_zeros(batch, threshold, x.shape[1])
    update = gx
    for k in range(threshold):
        if bool((best_residual <= limit).all()):
            break
        x = x + update
        gx_new = fn(x.view(shape)).reshape(batch, -1)
        delta_x, delta_g = update, gx_new - gx
        gx = gx_new
        residual = gx.norm(dim=1)
        improved = residual < best_residual
        best_x = torch.where(improved[:, None], x, best_x)
        best_residual = torch.where(improved, residual, best_residual)
        v = _times_inverse(us[:, :k], vs[:, :k], delta_x)
        u = (delta_x - _inverse_times(us[:, :k], vs[:, :k], delta_g)) / (v * delta_g).sum(1, keepdim=True)
        us[:, k] = torch.nan_to_num(u, nan=0.0, posinf=0.0, neginf=0.0)
        vs[:, k] = v
        update = -_inverse_times(us[:, :k + 1], vs[:, :k + 1], gx)
    return best_x.view(shape)
