"""Backpropagation by hand and by autograd: f(x, y, z) = (x + y) z at x = -2, y = 5, z = -4.

    python3 examples/backprop.py

The forward pass computes q = x + y = 3 and f = q z = -12. Backward, each gate multiplies the
gradient arriving at its output by its local gradient (the chain rule): df/dq = z, df/dz = q,
dq/dx = dq/dy = 1. Then the gate patterns: add distributes, max routes, mul swaps.
"""

import cnnkit as ck

x, y, z = -2.0, 5.0, -4.0

print("by hand:")
q = x + y
f = q * z
print(f"  forward:  q = x + y = {q:g}, f = q * z = {f:g}")
df_df = 1.0
df_dq, df_dz = z * df_df, q * df_df          # mul gate: local gradients z and q
dq_dx, dq_dy = 1.0, 1.0                      # add gate: local gradients 1 and 1
df_dx, df_dy = dq_dx * df_dq, dq_dy * df_dq  # chain rule
print(f"  local gradients: df/dq = z = {z:g}, df/dz = q = {q:g}, dq/dx = dq/dy = 1")
print(f"  chain rule: df/dx = dq/dx * df/dq = {df_dx:g}, df/dy = dq/dy * df/dq = {df_dy:g}, "
      f"df/dz = {df_dz:g}")

print("by autograd:")
tx, ty, tz = (ck.tensor(v, requires_grad=True) for v in (x, y, z))
tq = tx + ty
tf = tq * tz
tf.backward()
print(f"  f = {tf.item():g}; x.grad = {tx.grad.item():g}, y.grad = {ty.grad.item():g}, "
      f"z.grad = {tz.grad.item():g}")
assert (tx.grad.item(), ty.grad.item(), tz.grad.item()) == (df_dx, df_dy, df_dz)

print("gate patterns (upstream gradient 2):")
a, b = ck.tensor(3.0, requires_grad=True), ck.tensor(-1.0, requires_grad=True)
(a + b).backward(ck.tensor(2.0))
print(f"  add distributes: a + b -> a.grad = {a.grad.item():g}, b.grad = {b.grad.item():g}")
ab = ck.tensor([3.0, -1.0], requires_grad=True)
ab.max().backward(ck.tensor(2.0))
print(f"  max routes: max(a, b) -> a.grad = {ab.grad[0]:g}, b.grad = {ab.grad[1]:g} "
      f"(all to the larger input)")
a, b = ck.tensor(3.0, requires_grad=True), ck.tensor(-1.0, requires_grad=True)
(a * b).backward(ck.tensor(2.0))
print(f"  mul swaps: a * b -> a.grad = 2 * b = {a.grad.item():g}, "
      f"b.grad = 2 * a = {b.grad.item():g}")
