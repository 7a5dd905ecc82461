#!/usr/bin/env bash
# meta_onebox_files: what the Yocto recipe (meta-onebox/.../onebox_git.bb)
# packages matches what `cmake --install` puts into ${D}. No bitbake here, so
# this reads the recipe's FILES, CONFFILES and SYSTEMD_SERVICE with Yocto's
# default paths (prefix /usr, sysconfdir /etc, systemd_system_unitdir
# /lib/systemd/system), installs this build dir with DESTDIR, and checks:
# every installed file lands in one of the recipe's packages (else Yocto's QA
# says installed-vs-shipped), every FILES entry matches an installed file,
# the conffiles exist with mode 600, the units exist.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ONEBOX_BUILD:-$HERE/build}
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
# A build dir configured before the install prefix became /usr still has
# /usr/local: the package and the recipe are about /usr.
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
[ "${prefix:-/usr}" = /usr ] || { echo "FAIL: $BUILD has CMAKE_INSTALL_PREFIX=$prefix; reconfigure it: cmake -S . -B $BUILD -DCMAKE_INSTALL_PREFIX=/usr"; exit 1; }
recipe=$(ls "$HERE"/meta-onebox/recipes-connectivity/onebox/onebox_*.bb 2>/dev/null | head -n 1)
[ -n "$recipe" ] || { echo "FAIL: no meta-onebox/recipes-connectivity/onebox/onebox_*.bb"; exit 1; }
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
if ! DESTDIR="$work/image" cmake --install "$BUILD" >"$work/install.log" 2>&1; then
  echo "FAIL: DESTDIR=... cmake --install $BUILD failed:"; tail -n 20 "$work/install.log"; exit 1
fi
unitdir=$(sed -nE 's|^-- Installing: '"$work"'/image(/.*)/onebox-client\.service$|\1|p' "$work/install.log")
python3 - "$recipe" "$work/image" "${unitdir:-}" "$HERE" <<'EOF'
import fnmatch, glob, os, re, stat, sys
recipe, image, unitdir, top = sys.argv[1:5]
text = open(recipe).read().replace('\\\n', ' ')
PN = 'onebox'
yocto = {'PN': PN, 'prefix': '/usr', 'sbindir': '/usr/sbin', 'sysconfdir': '/etc',
         'datadir': '/usr/share', 'mandir': '/usr/share/man',
         'systemd_system_unitdir': '/lib/systemd/system'}
fails = []
if unitdir != yocto['systemd_system_unitdir']:
    # The recipe passes -DONEBOX_SYSTEMD_UNITDIR=${systemd_system_unitdir};
    # this build dir got its unit dir from systemd.pc: compare like with like.
    print(f"note: this build installs units to {unitdir}; using that for systemd_system_unitdir")
    yocto['systemd_system_unitdir'] = unitdir
if '-DONEBOX_SYSTEMD_UNITDIR=${systemd_system_unitdir}' not in text:
    fails.append("EXTRA_OECMAKE does not pass -DONEBOX_SYSTEMD_UNITDIR=${systemd_system_unitdir}")
for opt in ('-DONEBOX_BUILD_TESTS=OFF', '-DONEBOX_WERROR=OFF'):
    if opt not in text:
        fails.append(f"EXTRA_OECMAKE lacks {opt}")

def expand(v):
    for _ in range(5):
        v = re.sub(r'\$\{([A-Za-z_]+)\}', lambda m: yocto.get(m.group(1), m.group(0)), v)
    return v

def var(name):
    m = re.search(r'^' + re.escape(name) + r'\s*(?:\?\?=|\?=|=)\s*"([^"]*)"', text, re.M)
    return expand(m.group(1)).split() if m else None

m = re.search(r'^PACKAGES\s*=\+\s*"([^"]*)"', text, re.M)
ours = expand(m.group(1)).split() if m else []
if not ours:
    fails.append("no PACKAGES =+ line")
files = {p: var('FILES:${PN}' + p[len(PN):]) or [] for p in ours}

installed = []
for root, dirs, names in os.walk(image):
    for n in names:
        installed.append('/' + os.path.relpath(os.path.join(root, n), image))
installed.sort()
print("cmake --install tree (DESTDIR):")
for f in installed:
    print(f"  {stat.filemode(os.lstat(image + f).st_mode)} {f}")

owner = {}
for f in installed:
    for p in ours:  # first match wins, in PACKAGES order
        if any(fnmatch.fnmatchcase(f, pat) or f.startswith(pat.rstrip('/') + '/') for pat in files[p]):
            owner[f] = p
            break
    else:
        fails.append(f"{f} is installed but in none of {ours} (Yocto would put it in a default package such as onebox-doc, or stop with installed-vs-shipped)")
have_xml = bool(glob.glob(os.path.join(top, 'control', '*.xml')))
for p in ours:
    for pat in files[p]:
        if not any(fnmatch.fnmatchcase(f, pat) for f in installed):
            if pat.endswith('.xml') and not have_xml:
                continue  # the D-Bus interfaces arrive with control/*.xml
            fails.append(f"FILES:{p} entry {pat} matches nothing installed")
for p in ours:
    for c in var('CONFFILES:${PN}' + p[len(PN):]) or []:
        if c not in installed:
            fails.append(f"CONFFILES:{p} {c} is not installed")
        else:
            mode = stat.S_IMODE(os.lstat(image + c).st_mode)
            if mode != 0o600:
                fails.append(f"{c} has mode {mode:o}, want 600")
            if owner.get(c) != p:
                fails.append(f"CONFFILES:{p} {c} is packaged in {owner.get(c)}")
    for s in var('SYSTEMD_SERVICE:${PN}' + p[len(PN):]) or []:
        u = yocto['systemd_system_unitdir'] + '/' + s
        if owner.get(u) != p:
            fails.append(f"SYSTEMD_SERVICE:{p} {s}: {u} is {'in ' + str(owner.get(u)) if u in installed else 'not installed'}")
if (var('SYSTEMD_AUTO_ENABLE') or [''])[0] != 'disable':
    fails.append('SYSTEMD_AUTO_ENABLE is not "disable"')
print("packages:")
for p in ours:
    print(f"  {p}: " + ", ".join(f for f in installed if owner.get(f) == p))
for f in fails:
    print("FAIL: " + f)
if fails:
    sys.exit(1)
print(f"PASS: {len(installed)} installed files, each in one of {', '.join(ours)}; every FILES entry matches")
EOF
