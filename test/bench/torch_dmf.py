#!/usr/bin/env python3
"""
torch_dmf.py
  A PyTorch-on-CPU reference of dmf's training, for the performance benchmark:
  what a user would run instead of dmf_train (export the ratings, train in
  Python), doing the same work per epoch as src/core/train.c.

  python3 test/bench/torch_dmf.py --train FILE.csv [--validation FILE.csv]
      [--validation-fraction X] [--epochs N] [--lr X] [--dropout X]
      [--batch-size N] [--layers 256] [--dim 128] [--patience N]
      [--threads N] [--seed N]

  CSV lines: user_id,item_id,rating (a header line and further columns such
  as a timestamp are ignored).  One JSON object goes to stdout at the end,
  progress lines to stderr.  With Debian's python3-torch, run it with
  /usr/bin/python3 (a python3 from pyenv or a venv does not see it).

How it mirrors dmf (defaults from src/options.c):
  - branches: the user branch maps a user's row of the rating matrix, the item
    branch an item's column, through hidden layers (default one of 256, relu)
    to a linear output of dim 128.  The first layer is sparse: input entry
    = (rating - min) / (max - min) + 0.5 ("offset" encoding, src/core/encoding.h),
    the row's sum times 1 / sqrt(kept entries), plus the bias (src/core/sparse.c).
    Here it is a torch.sparse.mm of the row block by the weights, and its
    weight gradient a torch.sparse.mm of the transposed block: O(nnz x width)
    both ways, as dmf's sparse kernels.
  - init (src/core/network.c): first layer N(0, 2) (fan-in 1: rows are scaled),
    hidden layers N(0, 2 / fan-in), last layer N(0, 1 / fan-in), biases 0.
  - blocks (src/core/train.c): every epoch shuffles users into G groups and items
    into G groups, G = round(sqrt(n_train / batch_size)), and visits the
    G x G blocks in a random order.  A block embeds its distinct users and
    items once; the block's target ratings are left out of those rows and
    columns (and of the kept count that scales them); the loss is the mean
    squared error of the cosine (norms + 1e-8) against the rating scaled to
    [-1, 1]; one Adam step (0.9, 0.999, 1e-8) on both branches per block.
    Dropout, when set, is inverted dropout on the hidden units.
  - validation (per epoch, inside the epoch's time as in dmf_info's
    seconds_per_epoch): every user and item embedded from all its training
    ratings, factors normalized (a row without input has factor 0), the
    cosine mapped back to the rating scale and clamped; RMSE.  Early
    stopping after `patience` epochs without a better validation RMSE, armed
    once the best RMSE is 1% under that of the training mean (dmf's cut of
    the learning rate on a plateau, plateau_drops, is not mirrored: the
    benchmark compares seconds per epoch).
  - threads: torch.set_num_threads(--threads); OMP_WAIT_POLICY defaults to
    PASSIVE (spinning OpenMP threads make 2 threads many times slower when
    other jobs share the cores; dmf's two threads also sleep while they wait).
  - the rating scale is the range of the training file; ids are mapped over
    all its rows; duplicate (user, item) pairs are an error.
    --validation-fraction holds out ratings of the training file the way
    dmf_train does without a "validation" option (same hash of seed, user
    and item ids; dmf's default fraction is 0.05).
"""
import argparse
import json
import math
import os
import sys
import time

# OpenMP threads that spin while they wait make torch on 2 threads many times
# slower when other jobs share the cores (libgomp reads this when torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import numpy as np
    import torch
except ImportError as e:
    sys.exit("torch_dmf.py: %s in %s (Debian: apt-get install python3-torch "
             "python3-numpy, then run /usr/bin/python3)" % (e, sys.executable))

COSINE_EPS = 1e-8
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
U64 = np.uint64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_ratings(path):
    """user ids, item ids (int64) and ratings (float64) of a CSV file."""
    with open(path) as f:
        first = f.readline().split(",")
    try:
        float(first[0])
        skip = 0
    except (ValueError, IndexError):
        skip = 1                # a header line
    data = np.loadtxt(path, delimiter=",", skiprows=skip, usecols=(0, 1, 2),
                      dtype=[("u", np.int64), ("i", np.int64), ("r", np.float64)],
                      ndmin=1)
    return data["u"], data["i"], data["r"]


def mix64(x):
    """dmf_mix64 (splitmix64's finalizer) on a uint64 array."""
    with np.errstate(over="ignore"):
        x = x + U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


def held_out(users, items, seed, fraction):
    """The rows dmf_train holds out for validation (split_triples in src/dmf.c)."""
    if fraction <= 0:
        return np.zeros(len(users), dtype=bool)
    threshold = U64(int(fraction * 18446744073709551615.0))
    h = mix64(mix64(U64(seed) ^ users.astype(U64)) ^ items.astype(U64))
    return h < threshold


class SideInput:
    """
    One orientation of the training ratings as CSR (user rows or item rows),
    with the encoded input value of each entry, and where each training
    triple sits in it (to hide a block's targets).
    """

    def __init__(self, rows, cols, encoded, n_rows, n_cols):
        order = np.lexsort((cols, rows))
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.col = cols[order].astype(np.int64)
        self.val = encoded[order]
        self.rowptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=self.rowptr[1:])
        self.position = np.empty(len(rows), dtype=np.int64)
        self.position[order] = np.arange(len(rows))
        self.hidden = np.zeros(len(rows), dtype=bool)
        # transposes sort by column: a 16-bit key lets numpy use a radix sort
        self.col_key = self.col.astype(np.int16 if n_cols < 32768 else np.int32)

    def block(self, rows, hidden_positions, hidden_per_row):
        """
        The sparse input of `rows` (sorted entity ids) without the entries
        at hidden_positions: (X, X transposed) as coalesced COO tensors,
        values already multiplied by 1 / sqrt(kept entries of the row).
        """
        nb = len(rows)
        starts = self.rowptr[rows]
        lengths = self.rowptr[rows + 1] - starts
        total = int(lengths.sum())
        local = np.repeat(np.arange(nb, dtype=np.int64), lengths)
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        self.hidden[hidden_positions] = True
        keep = ~self.hidden[idx]
        self.hidden[hidden_positions] = False
        idx = idx[keep]
        local = local[keep]
        kept = lengths - hidden_per_row
        scale = np.zeros(nb, dtype=np.float32)
        scale[kept > 0] = 1.0 / np.sqrt(kept[kept > 0].astype(np.float32))
        col = self.col[idx]
        val = self.val[idx] * scale[local]
        x = torch.sparse_coo_tensor(torch.from_numpy(np.stack([local, col])),
                                    torch.from_numpy(val), (nb, self.n_cols))
        by_col = np.argsort(self.col_key[idx], kind="stable")
        xt = torch.sparse_coo_tensor(torch.from_numpy(np.stack([col[by_col], local[by_col]])),
                                     torch.from_numpy(val[by_col]), (self.n_cols, nb))
        # entries are sorted and distinct: mark them so, torch does not re-sort
        return x._coalesced_(True), xt._coalesced_(True)

    def full(self):
        """Every row with all its entries (no target hidden), as for validation."""
        lengths = np.diff(self.rowptr)
        scale = np.zeros(self.n_rows, dtype=np.float32)
        scale[lengths > 0] = 1.0 / np.sqrt(lengths[lengths > 0].astype(np.float32))
        local = np.repeat(np.arange(self.n_rows, dtype=np.int64), lengths)
        x = torch.sparse_coo_tensor(torch.from_numpy(np.stack([local, self.col])),
                                    torch.from_numpy(self.val * scale[local]),
                                    (self.n_rows, self.n_cols))
        return x._coalesced_(True), torch.from_numpy(lengths > 0)


class SparseFirstLayer(torch.autograd.Function):
    """x @ weight for a sparse x; the weight's gradient is x^T @ grad."""

    @staticmethod
    def forward(ctx, weight, x, x_t):
        ctx.x_t = x_t
        return torch.sparse.mm(x, weight)

    @staticmethod
    def backward(ctx, grad):
        return torch.sparse.mm(ctx.x_t, grad.contiguous()), None, None


class Branch(torch.nn.Module):
    """Sparse first layer, then dense layers; activation on all but the last."""

    def __init__(self, n_inputs, hidden, dim, generator):
        super().__init__()
        sizes = [n_inputs] + list(hidden) + [dim]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        n_layers = len(sizes) - 1
        for l in range(n_layers):
            fan_in = 1.0 if l == 0 else float(sizes[l])
            gain = 1.0 if l == n_layers - 1 else 2.0
            w = torch.randn(sizes[l], sizes[l + 1], generator=generator) * math.sqrt(gain / fan_in)
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(torch.zeros(sizes[l + 1])))

    def forward(self, x, x_t, dropout=0.0):
        n_layers = len(self.weights)
        h = None
        for l in range(n_layers):
            if l == 0:
                h = SparseFirstLayer.apply(self.weights[0], x, x_t) + self.biases[0]
            else:
                h = torch.addmm(self.biases[l], h, self.weights[l])
            if l < n_layers - 1:
                h = torch.relu(h)
                if dropout > 0.0:
                    h = torch.nn.functional.dropout(h, dropout, training=True)
        return h

    @torch.no_grad()
    def factors(self, x_full, has_input):
        """Normalized factors of every row; zero for a row without input."""
        n_layers = len(self.weights)
        h = torch.sparse.mm(x_full, self.weights[0]) + self.biases[0]
        for l in range(1, n_layers):
            h = torch.relu(h)
            h = torch.addmm(self.biases[l], h, self.weights[l])
        h[~has_input] = 0.0
        ss = (h.double() ** 2).sum(1)
        inv = torch.where(ss > 1e-24, ss.rsqrt(), torch.zeros_like(ss)).float()
        return h * inv[:, None]


def validation_rmse(ub, ib, user_full, item_full, val_u, val_i, val_r, rmin, rmax):
    uf = ub.factors(*user_full)
    vf = ib.factors(*item_full)
    cos = (uf[val_u].double() * vf[val_i].double()).sum(1)
    mid, half = 0.5 * (rmin + rmax), 0.5 * (rmax - rmin)
    pred = (mid + cos * half).clamp(rmin, rmax)
    return math.sqrt(float(((pred - val_r) ** 2).mean()))


def main():
    p = argparse.ArgumentParser(description="PyTorch-on-CPU reference of dmf's training")
    p.add_argument("--train", required=True, help="CSV user_id,item_id,rating")
    p.add_argument("--validation", help="CSV of validation ratings")
    p.add_argument("--validation-fraction", type=float, default=0.0,
                   help="without --validation: hold out this fraction of --train as "
                        "dmf_train does (dmf's default 0.05); default 0: none")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=0,
                   help="ratings per block; 0: dmf's automatic size (8192, but at most "
                        "about 100 and at least 16 blocks per epoch)")
    p.add_argument("--layers", default="256", help="hidden widths, comma-separated")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    hidden = [int(w) for w in args.layers.split(",") if w.strip()]

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_start = time.perf_counter()

    # --- load: read, map ids, check duplicates, hold out validation rows
    raw_u, raw_i, raw_r = read_ratings(args.train)
    if len(raw_r) == 0:
        sys.exit("torch_dmf.py: %s has no ratings" % args.train)
    user_ids, all_u = np.unique(raw_u, return_inverse=True)
    item_ids, all_i = np.unique(raw_i, return_inverse=True)
    n_users, n_items = len(user_ids), len(item_ids)
    rmin, rmax = float(raw_r.min()), float(raw_r.max())
    if not rmin < rmax:
        sys.exit("torch_dmf.py: all ratings are %g" % rmin)
    pair = all_u.astype(np.int64) * n_items + all_i
    if len(np.unique(pair)) != len(pair):
        sys.exit("torch_dmf.py: %s has duplicate (user, item) pairs" % args.train)

    if args.validation:
        held = np.zeros(len(raw_r), dtype=bool)
        vu, vi, vr = read_ratings(args.validation)
        if len(vr) and (vr.min() < rmin or vr.max() > rmax):
            sys.exit("torch_dmf.py: validation ratings outside [%g, %g]" % (rmin, rmax))
        pu = np.searchsorted(user_ids, vu).clip(0, n_users - 1)
        pi = np.searchsorted(item_ids, vi).clip(0, n_items - 1)
        known = (user_ids[pu] == vu) & (item_ids[pi] == vi)
        val_u, val_i, val_r = pu[known], pi[known], vr[known]
        n_unknown = int((~known).sum())
    else:
        held = held_out(raw_u, raw_i, args.seed, args.validation_fraction)
        val_u, val_i, val_r = all_u[held], all_i[held], raw_r[held]
        n_unknown = 0
    train_u = all_u[~held].astype(np.int64)
    train_i = all_i[~held].astype(np.int64)
    train_r = raw_r[~held]
    n_train, n_val = len(train_r), len(val_r)
    if n_train == 0:
        sys.exit("torch_dmf.py: no training rows left after the hold-out")
    load_seconds = time.perf_counter() - t_start
    log("loaded %d users, %d items, %d training and %d validation ratings "
        "(%d validation rows with unknown ids dropped) in %.2f s"
        % (n_users, n_items, n_train, n_val, n_unknown, load_seconds))

    # --- inputs, branches, optimizer
    t_setup = time.perf_counter()
    encoded = ((train_r - rmin) / (rmax - rmin) + 0.5).astype(np.float32)
    user_side = SideInput(train_u, train_i, encoded, n_users, n_items)
    item_side = SideInput(train_i, train_u, encoded, n_items, n_users)
    user_full = user_side.full()
    item_full = item_side.full()
    mid, half = 0.5 * (rmin + rmax), 0.5 * (rmax - rmin)
    targets = torch.from_numpy(((train_r - mid) / half).astype(np.float32))

    generator = torch.Generator().manual_seed(args.seed)
    ub = Branch(n_items, hidden, args.dim, generator)
    ib = Branch(n_users, hidden, args.dim, generator)
    params = list(ub.parameters()) + list(ib.parameters())
    optimizer = torch.optim.Adam(params, lr=args.lr, betas=ADAM_BETAS, eps=ADAM_EPS)

    if args.batch_size <= 0:
        args.batch_size = max(min(8192, n_train // 16), -(-n_train // 100), 1)
    g = math.sqrt(n_train / args.batch_size)
    groups = 1 if g < 1.0 else int(g + 0.5)
    gu, gi = min(groups, n_users), min(groups, n_items)
    n_blocks = gu * gi
    rng = np.random.default_rng(args.seed)

    if n_val > 0:
        val_u_t = torch.from_numpy(val_u.astype(np.int64))
        val_i_t = torch.from_numpy(val_i.astype(np.int64))
        val_r_t = torch.from_numpy(val_r.astype(np.float64))
        mean_rmse = math.sqrt(float(((val_r - train_r.mean()) ** 2).mean()))
    log("blocks per epoch: %d x %d; setup %.2f s; torch %s, %d thread(s)"
        % (gu, gi, time.perf_counter() - t_setup, torch.__version__, args.threads))

    # --- epochs
    epoch_seconds, train_rmses, val_rmses = [], [], []
    best_rmse, best_epoch, since_best = float("nan"), 0, 0
    best_state = None
    user_group = np.empty(n_users, dtype=np.int64)
    item_group = np.empty(n_items, dtype=np.int64)
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.perf_counter()
        user_group[rng.permutation(n_users)] = np.arange(n_users) % gu
        item_group[rng.permutation(n_items)] = np.arange(n_items) % gi
        block_of = user_group[train_u] * gi + item_group[train_i]
        order = np.argsort(block_of, kind="stable")
        bounds = np.searchsorted(block_of[order], np.arange(n_blocks + 1))
        se_sum = 0.0
        for blk in rng.permutation(n_blocks):
            ks = order[bounds[blk]:bounds[blk + 1]]
            if len(ks) == 0:
                continue
            block_users, pair_u = np.unique(train_u[ks], return_inverse=True)
            block_items, pair_i = np.unique(train_i[ks], return_inverse=True)
            xu, xu_t = user_side.block(block_users, user_side.position[ks],
                                       np.bincount(pair_u, minlength=len(block_users)))
            xi, xi_t = item_side.block(block_items, item_side.position[ks],
                                       np.bincount(pair_i, minlength=len(block_items)))
            u = ub(xu, xu_t, args.dropout)
            v = ib(xi, xi_t, args.dropout)
            u_norm = u.norm(dim=1) + COSINE_EPS
            v_norm = v.norm(dim=1) + COSINE_EPS
            pu_t = torch.from_numpy(pair_u.astype(np.int64))
            pi_t = torch.from_numpy(pair_i.astype(np.int64))
            cos = (u[pu_t] * v[pi_t]).sum(1) / (u_norm[pu_t] * v_norm[pi_t])
            loss = ((cos - targets[torch.from_numpy(ks)]) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            se_sum += float(loss) * len(ks)
        train_rmse = math.sqrt(se_sum / n_train) * half
        train_rmses.append(train_rmse)

        rmse = float("nan")
        if n_val > 0:
            rmse = validation_rmse(ub, ib, user_full, item_full, val_u_t, val_i_t, val_r_t,
                                   rmin, rmax)
            val_rmses.append(rmse)
        epoch_seconds.append(time.perf_counter() - t_epoch)
        log("epoch %d: train RMSE %.4f, validation RMSE %.4f, %.2f s"
            % (epoch, train_rmse, rmse, epoch_seconds[-1]))

        if n_val == 0 or math.isnan(best_rmse) or rmse < best_rmse:
            best_rmse, best_epoch, since_best = rmse, epoch, 0
            best_state = [q.detach().clone() for q in params]
        elif best_rmse < 0.99 * mean_rmse:
            since_best += 1
        if since_best >= args.patience:
            break
    # early stopping keeps the best epoch's weights, as dmf does
    with torch.no_grad():
        for q, b in zip(params, best_state):
            q.copy_(b)
    seconds_total = time.perf_counter() - t_start

    result = {
        "torch_version": torch.__version__,
        "threads": args.threads,
        "epochs": len(epoch_seconds),
        "seconds_total": round(seconds_total, 3),
        "seconds_per_epoch": round(sum(epoch_seconds) / len(epoch_seconds), 3),
        "load_seconds": round(load_seconds, 3),
    }
    if n_val > 0:
        result["validation_rmse"] = [round(r, 5) for r in val_rmses]
        result["best_validation_rmse"] = round(best_rmse, 5)
        result["best_epoch"] = best_epoch
    else:
        result["best_validation_rmse"] = None
    result.update({
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "train_rmse": [round(r, 5) for r in train_rmses],
        "n_users": n_users, "n_items": n_items, "n_train": n_train,
        "n_validation": n_val, "validation_unknown": n_unknown,
        "blocks_per_epoch": n_blocks,
        "options": {"layers": hidden, "dim": args.dim, "batch_size": args.batch_size,
                    "lr": args.lr, "dropout": args.dropout, "patience": args.patience,
                    "seed": args.seed, "max_epochs": args.epochs},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
