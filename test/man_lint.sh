#!/usr/bin/env bash
# man_lint: the man pages in units/man/ render without a single warning
# (groff -man -ww -z, and man --warnings as lintian runs it), are ASCII, carry
# the sections they must and the project's version, onebox.conf(5) documents
# every key of README.md's configuration table, and every option and command
# that `onebox-client --help` / `onebox-server --help` prints is in its page.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ONEBOX_BUILD:-$HERE/build}
VERSION=${ONEBOX_VERSION:-}
command -v groff >/dev/null || { echo "SKIP: groff not installed (groff-base)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

pages=("$HERE"/units/man/*.[1-9])
[ -e "${pages[0]}" ] || { echo "FAIL: no man pages in units/man/"; exit 1; }
for page in "${pages[@]}"; do
  name=$(basename "$page")
  out=$(LC_ALL=C groff -man -ww -z "$page" 2>&1) || fail "$name: groff exited non-zero"
  [ -z "$out" ] || fail "$name: groff -man -ww -z warns:"$'\n'"$out"
  if command -v man >/dev/null; then
    out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
    [ -z "$out" ] || fail "$name: man --warnings warns:"$'\n'"$out"
  fi
  if LC_ALL=C grep -nP '[^\x00-\x7f]' "$page" >/dev/null; then
    fail "$name: non-ASCII characters (write them as groff escapes): $(LC_ALL=C grep -nP '[^\x00-\x7f]' "$page" | head -3)"
  fi
  section=${name##*.}
  stem=${name%.*}
  required=(NAME SYNOPSIS DESCRIPTION FILES "SEE ALSO")
  [ "$section" = 8 ] && required+=(COMMANDS OPTIONS SIGNALS "EXIT STATUS")
  for sh in "${required[@]}"; do
    grep -qx "\.SH \"\?$sh\"\?" "$page" || fail "$name: no .SH $sh"
  done
  # NAME: "stem \- summary", the form whatis/lexgrog and lintian parse.
  namel=$(sed -n '/^\.SH NAME$/{n;p;q}' "$page")
  [[ "$namel" == "${stem//-/\\-} \\- "* ]] || fail "$name: NAME line is '$namel', want '${stem//-/\\-} \\- ...'"
  if [ -n "$VERSION" ]; then
    grep -q "^\.TH .* \"onebox $VERSION\"" "$page" || fail "$name: .TH does not say \"onebox $VERSION\" (project version)"
  fi
done

# Every key of the README's configuration table, in its section of onebox.conf(5).
python3 - "$HERE/README.md" "$HERE/units/man/onebox.conf.5" <<'EOF' || fails=$((fails + 1))
import re, sys
def die(msg):
    print(msg, flush=True)
    sys.exit(1)
readme, page = open(sys.argv[1]).read(), open(sys.argv[2]).read()
m = re.search(r'^## Configuration\n(.*?)^## ', readme, re.S | re.M)
if not m:
    die("FAIL: README.md has no '## Configuration' section")
keys, section = [], None
for line in m.group(1).splitlines():
    cols = [c.strip() for c in line.split('|')]
    if len(cols) < 4 or not cols[2].startswith('`'):
        continue
    if cols[1]:
        section = cols[1].strip('`')
    keys += [(section, k) for k in re.findall(r'`([a-z_]+)`', cols[2])]
if len(keys) < 20:
    die(f"FAIL: found only {len(keys)} keys in README.md's configuration table; has its layout changed?")
# The page's sections: ".SS [client]" up to the next .SS/.SH.
blocks = {}
for mm in re.finditer(r'^\.SS (\[[^\]]+\])\n(.*?)(?=^\.S[SH] )', page, re.S | re.M):
    blocks[mm.group(1)] = mm.group(2)
missing = []
for sec, key in keys:
    body = blocks.get(sec)
    if body is None:
        missing.append(f"{sec} (no .SS {sec})")
    elif not re.search(r'^\.(B|BR|TP)\b.*\b' + re.escape(key) + r'\b', body, re.M):
        missing.append(f"{sec} {key}")
if missing:
    die("FAIL: onebox.conf.5 does not document: " + ", ".join(sorted(set(missing))))
print(f"PASS: onebox.conf.5 documents all {len(keys)} keys of README.md's configuration table")
EOF

# Options and commands from --help are in the program's page.
for prog in onebox-client onebox-server; do
  page=$HERE/units/man/$prog.8
  if [ ! -x "$BUILD/$prog" ]; then
    fail "$prog: $BUILD/$prog not built"
    continue
  fi
  help=$("$BUILD/$prog" --help 2>&1) || fail "$prog --help exited non-zero"
  mapfile -t opts < <(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u)
  mapfile -t cmds < <(sed -n '/^Commands:/,/^$/p' <<<"$help" | sed -nE 's/^  ([a-z]+)( .*)?$/\1/p')
  [ ${#opts[@]} -gt 0 ] || fail "$prog --help lists no options"
  [ ${#cmds[@]} -gt 0 ] || fail "$prog --help lists no commands"
  for o in "${opts[@]}"; do
    grep -qF -- "${o//-/\\-}" "$page" || fail "$prog.8 does not document $o (from --help)"
  done
  for c in "${cmds[@]}"; do
    grep -qx "\.B $c" "$page" || fail "$prog.8 has no command entry '.B $c' (from --help)"
  done
done

if [ "$fails" -gt 0 ]; then
  echo "FAIL: $fails problem(s) in ${#pages[@]} man pages"
  exit 1
fi
echo "PASS: ${#pages[@]} man pages lint clean"
