#!/usr/bin/env python3
"""policy_oracle.py - helpers for the policy integration tests.

  policy_oracle.py json EXPR < FILE
      Parse JSON from stdin as j, print the Python expression EXPR (strings
      bare, anything else as JSON). Exit 3 when EXPR fails (missing key...).

  policy_oracle.py privacy --tierfs BIN --mnt DIR --seed N --steps N
      The privacy invariant under a seeded random sequence of rule edits,
      renames, links, tags, pins and creations through a live home mount.
      After every step an independent oracle (first match over a small pool
      of rules whose globs are simple prefixes and suffixes) says which
      files must be private; 'tierfs status --json' must show each of them
      private, sync local, invisible. Rule edits get up to RULE_WAIT seconds
      to be applied by the mount; namespace changes, tags and pins must be
      in effect when the command returns.
"""
import json
import os
import random
import subprocess
import sys
import time

RULE_WAIT = 3.0  # seconds the mount may take to pick up a rule change
RULE_MIN = 1.3   # ... and that it surely takes (it reloads once a second)
SETTLE = 2.5     # seconds for other re-evaluations (sizes, unlinks: the flusher)

# The pool: name -> (argv after NAME, matcher, placement). Matchers take
# (path, inode) and are written independently of tierfs's glob engine.
TAG_CLASS = "user.tierfs.class"
TAG_SECRET = "user.tierfs.secret"


def under(prefix):
    return lambda p, ino: p == prefix or p.startswith(prefix + "/")


def suffix(sfx):
    return lambda p, ino: p.rsplit("/", 1)[-1].endswith(sfx)


POOL = {
    "pa": (["--path", "/a/**", "--placement", "private"], under("/a"), "private"),
    "pb": (["--path", "/b/**", "--placement", "mirror"], under("/b"), "mirror"),
    "pax": (["--path", "/a/x/**", "--placement", "mirror"], under("/a/x"), "mirror"),
    "pbx": (["--path", "/b/x/**", "--placement", "private"], under("/b/x"), "private"),
    "pc": (["--path", "/c/**", "--placement", "on-demand"], under("/c"), "on-demand"),
    "pcx": (["--path", "/c/x/**", "--placement", "tier", "--evict-after", "1d"], under("/c/x"), "tier"),
    "csvp": (["--path", "/**/*.csv", "--placement", "private"], suffix(".csv"), "private"),
    "txtm": (["--path", "/**/*.txt", "--placement", "mirror"], suffix(".txt"), "mirror"),
    "tagm": (["--tag", TAG_CLASS + "=export", "--placement", "mirror"],
             lambda p, ino: ino.tags.get(TAG_CLASS) == "export", "mirror"),
    "tagp": (["--tag", TAG_SECRET, "--placement", "private"],
             lambda p, ino: TAG_SECRET in ino.tags, "private"),
    "all": (["--placement", "on-demand"], lambda p, ino: True, "on-demand"),
}
RANK = {"private": 0, "tier": 1, "on-demand": 2, "mirror": 2}
TOPS = ["/a", "/b", "/c"]


class Inode:
    def __init__(self, n):
        self.n = n
        self.names = []
        self.tags = {}
        self.pin_private = False


def cmd_json(args):
    j = json.load(sys.stdin)
    try:
        v = eval(args[0], {"j": j})
    except Exception as e:  # noqa: BLE001
        print(f"json: {args[0]}: {e!r}", file=sys.stderr)
        return 3
    print(v if isinstance(v, str) else json.dumps(v))
    return 0


class Privacy:
    def __init__(self, tierfs, mnt, seed, steps):
        self.tierfs, self.mnt, self.seed, self.steps = tierfs, mnt, seed, steps
        self.rng = random.Random(seed)
        self.rules = []  # names, in order
        self.inodes = []
        self.xdir = "/a"  # where the movable directory 'x' is
        self.counter = 0
        self.step = 0
        self.log = []
        self.problems = 0
        self.wrong = 0

    # ---- plumbing ----
    def host(self, p):
        return self.mnt + p

    def run(self, argv, check=True):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            self.die(f"command failed ({r.returncode}): {' '.join(argv)}\n  stderr: {r.stderr.strip()}")
        return r

    def tfs(self, *args, check=True):
        return self.run([self.tierfs, *args], check=check)

    def die(self, msg):
        print(f"FAIL: seed {self.seed}, step {self.step}: {msg}", file=sys.stderr)
        print("# last steps:", file=sys.stderr)
        for line in self.log[-15:]:
            print(f"#   {line}", file=sys.stderr)
        sys.exit(1)

    def did(self, what):
        self.log.append(f"step {self.step}: {what}")

    # ---- the oracle ----
    def names(self):
        return [(p, ino) for ino in self.inodes for p in ino.names]

    def name_placement(self, p, ino):
        for r in self.rules:
            _, match, placement = POOL[r]
            if match(p, ino):
                return placement, r
        return "private", None

    def expect(self, ino):
        """(placement, rule) the oracle gives an inode; rule None when several
        names make it ambiguous beyond privacy rank."""
        if ino.pin_private:
            return "private", None
        res = [self.name_placement(p, ino) for p in ino.names]
        best = min(res, key=lambda x: RANK[x[0]])
        same = {x for x in res if RANK[x[0]] == RANK[best[0]]}
        return (best if len(same) == 1 else (best[0], "?"))

    # ---- checks ----
    def status(self):
        paths = [self.host(p) for p, _ in self.names()]
        if not paths:
            return {}
        r = self.tfs("status", "--json", *paths)
        try:
            files = json.loads(r.stdout)["files"]
        except Exception as e:  # noqa: BLE001
            self.die(f"status --json unreadable: {e!r}: {r.stdout[:300]}")
        if len(files) != len(paths):
            self.die(f"status --json gave {len(files)} files for {len(paths)} paths")
        return {p: f for (p, _), f in zip(self.names(), files)}

    def mismatches(self):
        """(privacy violations, other differences)."""
        st = self.status()
        bad, diff = [], []
        for p, ino in self.names():
            f = st[p]
            if f.get("path") != p:
                diff.append(f"{p}: status reports path {f.get('path')!r}")
            want, rule = self.expect(ino)
            got = f.get("placement")
            if want == "private":
                if got != "private" or f.get("sync") != "local" or f.get("visible") is not False:
                    bad.append(f"{p} must be private (pin={ino.pin_private}, tags={ino.tags}, "
                               f"names={ino.names}) but status says placement={got} "
                               f"sync={f.get('sync')} visible={f.get('visible')} rule={f.get('rule')}")
            else:
                rank_ok = got in RANK and RANK[got] == RANK[want]
                if rule == "?" and not rank_ok or rule != "?" and got != want:
                    diff.append(f"{p}: expected {want} (rule {rule}), status says {got} (rule {f.get('rule')})")
                elif rule not in ("?", None) and f.get("rule") != rule:
                    diff.append(f"{p}: expected rule {rule}, status says {f.get('rule')}")
                if want == "tier" and f.get("visible") is not False:
                    diff.append(f"{p}: tier without --export, yet visible={f.get('visible')}")
                if want in ("mirror", "on-demand") and f.get("visible") is not True:
                    diff.append(f"{p}: {want} but visible={f.get('visible')}")
        return bad, diff

    def check(self, rule_step):
        """After a rule edit the mount has RULE_WAIT seconds (and at least
        RULE_MIN, so it has surely reloaded the rules before the next step
        relies on them). After anything else, privacy must hold at once;
        other differences (an unlinked name re-evaluated by the flusher)
        get SETTLE seconds."""
        if rule_step:
            time.sleep(RULE_MIN)
            deadline = time.monotonic() + RULE_WAIT - RULE_MIN
        else:
            bad, _ = self.mismatches()
            if bad:
                self.die("privacy violated when the call returned:\n  " + "\n  ".join(bad))
            deadline = time.monotonic() + SETTLE
        while True:
            bad, diff = self.mismatches()
            if not bad and not diff:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if bad:
            self.die("privacy violated:\n  " + "\n  ".join(bad + diff))
        # Not a privacy problem, but the placement is wrong: report it, go on.
        self.wrong += 1
        if self.wrong <= 5:
            print(f"FAIL: seed {self.seed}, step {self.step} ({self.log[-1]}): wrong placement:\n  "
                  + "\n  ".join(diff), file=sys.stderr)
        self.problems += 1

    def check_rules(self):
        r = self.tfs("policy", "list", "--json")
        got = [x["name"] for x in json.loads(r.stdout)]
        if got != self.rules:
            self.die(f"policy list says {got}, expected {self.rules}")

    # ---- steps ----
    def dirs(self):
        return TOPS + [self.xdir + "/x"]

    def newname(self):
        self.counter += 1
        return f"f{self.counter}" + self.rng.choice([".csv", ".txt", ".dat"])

    def op_create(self):
        d = self.rng.choice(self.dirs())
        p = f"{d}/{self.newname()}"
        with open(self.host(p), "wb") as fh:
            fh.write(os.urandom(self.rng.randint(0, 3000)))
        ino = Inode(len(self.inodes))
        ino.names.append(p)
        self.inodes.append(ino)
        self.did(f"create {p}")
        return False

    def pick_name(self):
        names = self.names()
        return self.rng.choice(names) if names else (None, None)

    def op_mv_file(self):
        p, ino = self.pick_name()
        if not p:
            return self.op_create()
        base = p.rsplit("/", 1)[1]
        if self.rng.random() < 0.3:
            self.counter += 1
            base = f"m{self.counter}" + self.rng.choice([".csv", ".txt", ".dat"])
        d = self.rng.choice(self.dirs())
        q = f"{d}/{base}"
        if q == p or any(q == n for n, _ in self.names()):
            self.counter += 1
            q = f"{d}/r{self.counter}.dat"
        os.rename(self.host(p), self.host(q))
        ino.names[ino.names.index(p)] = q
        self.did(f"mv {p} {q}")
        return False

    def op_mv_dir(self):
        dest = self.rng.choice([t for t in TOPS if t != self.xdir])
        old = self.xdir + "/x"
        os.rename(self.host(old), self.host(dest + "/x"))
        for ino in self.inodes:
            ino.names = [dest + "/x" + n[len(old):] if n.startswith(old + "/") else n for n in ino.names]
        self.xdir = dest
        self.did(f"mv {old} {dest}/x")
        return False

    def op_link(self):
        p, ino = self.pick_name()
        if not p:
            return self.op_create()
        d = self.rng.choice(self.dirs())
        self.counter += 1
        q = f"{d}/l{self.counter}" + self.rng.choice([".csv", ".txt", ".dat"])
        os.link(self.host(p), self.host(q))
        ino.names.append(q)
        self.did(f"ln {p} {q}")
        return False

    def op_unlink(self):
        multi = [(p, ino) for p, ino in self.names() if len(ino.names) > 1]
        if not multi or self.rng.random() < 0.3:
            p, ino = self.pick_name()
            if not p:
                return self.op_create()
        else:
            p, ino = self.rng.choice(multi)
        os.unlink(self.host(p))
        ino.names.remove(p)
        if not ino.names:
            self.inodes.remove(ino)
        self.did(f"rm {p}")
        return False

    def op_tag(self):
        p, ino = self.pick_name()
        if not p:
            return self.op_create()
        which = self.rng.random()
        if which < 0.35:
            v = self.rng.choice(["export", "other"])
            self.run(["setfattr", "-n", TAG_CLASS, "-v", v, self.host(p)])
            ino.tags[TAG_CLASS] = v
            self.did(f"setfattr {TAG_CLASS}={v} {p}")
        elif which < 0.55 and TAG_CLASS in ino.tags:
            self.run(["setfattr", "-x", TAG_CLASS, self.host(p)])
            del ino.tags[TAG_CLASS]
            self.did(f"setfattr -x {TAG_CLASS} {p}")
        elif which < 0.8 or TAG_SECRET not in ino.tags:
            self.run(["setfattr", "-n", TAG_SECRET, "-v", "1", self.host(p)])
            ino.tags[TAG_SECRET] = "1"
            self.did(f"setfattr {TAG_SECRET} {p}")
        else:
            self.run(["setfattr", "-x", TAG_SECRET, self.host(p)])
            del ino.tags[TAG_SECRET]
            self.did(f"setfattr -x {TAG_SECRET} {p}")
        return False

    def op_pin(self):
        p, ino = self.pick_name()
        if not p:
            return self.op_create()
        if ino.pin_private and self.rng.random() < 0.7:
            self.tfs("unpin", self.host(p))
            ino.pin_private = False
            self.did(f"unpin {p}")
        else:
            self.tfs("pin", "--private", self.host(p))
            ino.pin_private = True
            self.did(f"pin --private {p}")
        return False

    def op_rule(self):
        absent = [r for r in POOL if r not in self.rules]
        x = self.rng.random()
        if (x < 0.45 or len(self.rules) < 2) and absent:
            r = self.rng.choice(absent)
            self.tfs("policy", "add", r, *POOL[r][0])
            self.rules.append(r)
            self.did(f"policy add {r} {' '.join(POOL[r][0])}")
        elif x < 0.7 and self.rules:
            r = self.rng.choice(self.rules)
            self.tfs("policy", "rm", r)
            self.rules.remove(r)
            self.did(f"policy rm {r}")
        else:
            r, o = self.rng.sample(self.rules, 2)
            where = self.rng.choice(["--before", "--after"])
            self.tfs("policy", "move", r, where, o)
            self.rules.remove(r)
            k = self.rules.index(o)
            self.rules.insert(k if where == "--before" else k + 1, r)
            self.did(f"policy move {r} {where} {o}")
        self.check_rules()
        return True

    def main(self):
        for t in TOPS:
            os.makedirs(self.host(t), exist_ok=True)
        os.makedirs(self.host("/a/x"), exist_ok=True)
        for _ in range(8):
            self.op_create()
        ops = [(self.op_rule, 30), (self.op_create, 10), (self.op_mv_file, 20), (self.op_mv_dir, 6),
               (self.op_link, 6), (self.op_unlink, 5), (self.op_tag, 12), (self.op_pin, 10)]
        funcs = [f for f, _ in ops]
        weights = [w for _, w in ops]
        t0 = time.monotonic()
        for self.step in range(1, self.steps + 1):
            f = self.rng.choices(funcs, weights)[0]
            wait = f()
            self.check(wait)
        n = len(self.names())
        print(f"# seed {self.seed}: {self.steps} steps, {len(self.inodes)} files ({n} names), "
              f"rules {self.rules}, {time.monotonic() - t0:.1f} s")
        return 1 if self.problems else 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "json":
        return cmd_json(sys.argv[2:])
    if sys.argv[1] == "privacy":
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("--tierfs", required=True)
        ap.add_argument("--mnt", required=True)
        ap.add_argument("--seed", type=int, required=True)
        ap.add_argument("--steps", type=int, default=150)
        a = ap.parse_args(sys.argv[2:])
        os.chdir(a.mnt)  # rule commands find the volume from the current directory
        return Privacy(a.tierfs, os.path.realpath(a.mnt), a.seed, a.steps).main()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
