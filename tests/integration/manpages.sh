#!/bin/bash
# manpages.sh - the man pages (docs/man/*.scd, built by CMake with scdoc)
# cannot silently fall behind the binary: every command in the command
# table of src/main.c is documented in a page that shows 'tierfs COMMAND',
# and every option that 'tierfs COMMAND [SUBCOMMAND] --help' shows (long
# and short options, and for mount the -o mount options, home and cloud)
# appears in one of that command's pages. Also: every source was built
# into a page, and tierfs(1) lists every command.
. "$(dirname "$0")/lib.sh"
tfs_setup
command -v python3 >/dev/null || fail "python3 is needed"

python3 - "$TIERFS" "$TIERFS_SRC" "$TIERFS_BIN_DIR" <<'PY' || fail "the man pages miss what the binary offers (listed above)"
import glob, os, re, subprocess, sys

tierfs, src, bindir = sys.argv[1:4]
problems = []

def norm(text):
    # scdoc markup off: escapes \_ \*, underline _x_, bold *x*
    text = text.replace("\\_", "\0").replace("\\*", "\1")
    text = re.sub(r"(?<![\w])_([^_\n]+)_(?![\w])", r"\1", text)
    return text.replace("*", "").replace("\0", "_").replace("\1", "*")

pages = {}
for p in sorted(glob.glob(os.path.join(src, "docs/man/*.scd"))):
    name = os.path.basename(p)[:-4]
    pages[name] = norm(open(p, encoding="utf-8").read())
    built = os.path.join(bindir, "docs/man", name)
    if not os.path.isfile(built) or os.path.getsize(built) == 0:
        problems.append(f"page {name} was not built into {built}")

table = open(os.path.join(src, "src/main.c"), encoding="utf-8").read()
table = table[table.index("commands[] = {"):]
table = table[:table.index("};")]
commands = re.findall(r'\{\s*"([a-z-]+)",\s*cmd_', table)
if len(commands) < 10:
    problems.append(f"only {len(commands)} commands found in src/main.c: the parser is broken")

def helptext(*args):
    r = subprocess.run([tierfs, *args, "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append(f"'tierfs {' '.join(args)} --help' exited {r.returncode}")
    return r.stdout

OPT = re.compile(r"(?<![\w/-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
def options(text):
    return set(OPT.findall(text)) - {"--help", "-h"}

def mount_options(text):
    found = set(re.findall(r"\b([a-z][a-z_]*)=[A-Z]", text))
    for a, b in re.findall(r"\b([a-z_]+) / ([a-z_]+)\b", text):
        found |= {a, b}
    # the lists of options accepted and ignored, and "a, b  meaning" items
    for para in re.findall(r"(?s)fstab and mount\(8\) options (.*?) are accepted", text):
        found |= {w for w in re.split(r"[\s,]+(?:and\s+)?", para) if re.fullmatch(r"[a-z_]+|x-\*|comment=\*", w)}
    for items in re.findall(r"^\s+((?:[a-z_]+, )+[a-z_]+)(?:\s{2,}|\s\()", text, re.M):
        found |= set(items.split(", "))
    return {w.rstrip("=*") for w in found} - {""}

def present(word, text):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None

total = 0
main_help = helptext()
for cmd in commands:
    if cmd not in main_help:
        problems.append(f"'tierfs --help' does not list '{cmd}'")
    where = [n for n, t in pages.items() if re.search(r"\btierfs " + re.escape(cmd) + r"\b", t) and n != "tierfs.1"]
    if not where:
        problems.append(f"command '{cmd}': no page shows 'tierfs {cmd}'")
        continue
    if not present(cmd, pages.get("tierfs.1", "")):
        problems.append(f"command '{cmd}' is not in tierfs(1)")
    text = "\n".join(pages[n] for n in where)
    helps = {(cmd,): helptext(cmd)}
    # subcommands: 'tierfs CMD SUB' in the usage, or '(a | b | c)'
    h = helps[(cmd,)]
    subs = set(re.findall(r"tierfs " + re.escape(cmd) + r" ([a-z]+)\b", h))
    for alt in re.findall(r"tierfs " + re.escape(cmd) + r" \(([a-z |]+)\)", h):
        subs |= {s.strip() for s in alt.split("|")}
    for sub in sorted(subs):
        if not present(sub, text):
            problems.append(f"'tierfs {cmd} {sub}' is not in {', '.join(where)}")
        helps[(cmd, sub)] = helptext(cmd, sub)
    if cmd == "mount":
        helps[("mount", "--cloud")] = helptext("mount", "--cloud")
    for args, h in helps.items():
        wanted = options(h)
        if cmd == "mount":
            wanted |= mount_options(h)
        total += len(wanted)
        for o in sorted(wanted):
            if not present(o, text):
                problems.append(f"'{o}' of 'tierfs {' '.join(args)} --help' is not in {', '.join(where)}")

if total < 60:
    problems.append(f"only {total} options found in the --help texts: the parser is broken")
for p in problems:
    print("FAIL:", p, file=sys.stderr)
print(f"# {len(commands)} commands, {total} options checked against {len(pages)} pages")
sys.exit(1 if problems else 0)
PY
# 'tierfs mount --help' shows both forms, home and cloud
"$TIERFS" mount --help >"$T/mount.help" || fail "tierfs mount --help"
grep -q '^usage: tierfs mount .*VOLUME' "$T/mount.help" || fail "mount --help lacks the home form"
grep -q '^ *tierfs mount --cloud --key-file FILE' "$T/mount.help" || fail "mount --help lacks the cloud form"
note "the man pages cover every command and option"
