#!/usr/bin/env bash
# The layout keeps its promises (README, "Layout"):
#   - no two object files of dmf.so use each other's symbols, directly or
#     through others (no cycle): the core never calls back into the server
#     layer, the SQL families only call down;
#   - no .c file is longer than 900 lines, and no function body longer than
#     150, but for the ones listed in LONG_FILES and LONG_FUNCTIONS below,
#     which are still to be split (the lists may only shrink);
#   - the README's layout table names every file of src/ and src/core/;
#   - the README's table of options has exactly the options of
#     src/options.c's table, with its defaults.
# The Makefile checks that src/core/ includes no PostgreSQL header.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"
cd "$DMF_ROOT"

# the object files of the build (test/check.sh has built them already)
make -s PG_CONFIG="$(dmf_pg_config)" >/dev/null

python3 - <<'PY'
import collections, glob, re, subprocess, sys

MAX_FILE_LINES = 900
MAX_FUNCTION_LINES = 150
# function: why it is still long
LONG_FUNCTIONS = {
}
# file: why it is still long
LONG_FILES = {
}
failed = []

# 1. no cycle between object files
objs = sorted(glob.glob('src/*.o') + glob.glob('src/core/*.o'))
defined, used = {}, collections.defaultdict(set)
for o in objs:
    for line in subprocess.run(['nm', o], capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in 'TDBR':
            defined[f[2]] = o
        elif len(f) == 2 and f[0] == 'U':
            used[o].add(f[1])
calls = {o: {defined[s] for s in used[o] if s in defined and defined[s] != o} for o in objs}
state = {}
def visit(o, path):
    state[o] = 'open'
    for p in sorted(calls[o]):
        if state.get(p) == 'open':
            failed.append('cycle: ' + ' -> '.join(path[path.index(p):] + [p]))
        elif p not in state:
            visit(p, path + [p])
    state[o] = 'done'
for o in objs:
    if o not in state:
        visit(o, [o])
print(f'{len(objs)} object files, no cycle' if not any(f.startswith('cycle') for f in failed) else 'cycles found')

# 2. file and function lengths
sources = sorted(glob.glob('src/*.c') + glob.glob('src/core/*.c'))
long_seen = set()
for path in sources:
    lines = open(path).read().split('\n')
    if len(lines) > MAX_FILE_LINES:
        if path in LONG_FILES:
            long_seen.add(path)
            print(f'still long: {path}, {len(lines)} lines ({LONG_FILES[path]})')
        else:
            failed.append(f'{path}: {len(lines)} lines (at most {MAX_FILE_LINES})')
    start = name = None
    for n, line in enumerate(lines, 1):
        m = re.match(r'^([A-Za-z_]\w*)\(', line)
        if m:
            start, name = n, m.group(1)
        elif line.startswith('}') and name:
            length = n - start
            if length > MAX_FUNCTION_LINES:
                if name in LONG_FUNCTIONS:
                    long_seen.add(name)
                    print(f'still long: {path}: {name}, {length} lines ({LONG_FUNCTIONS[name]})')
                else:
                    failed.append(f'{path}: {name} is {length} lines (at most {MAX_FUNCTION_LINES})')
            name = None
for name in sorted((set(LONG_FUNCTIONS) | set(LONG_FILES)) - long_seen):
    failed.append(f'{name} is no longer long: take it off LONG_FUNCTIONS')
print(f'{len(sources)} source files checked for length')

# 3. the README's layout table names every source file
readme = open('README.md').read()
layout = readme[readme.index('## Layout'):]
layout = layout[:layout.index('\n## ', 1)]
for path in sorted(glob.glob('src/*.[ch]') + glob.glob('src/core/*.[ch]')):
    base = path[:-2]
    named = f'`{path}`' in layout or (path.endswith('.h') and f'`{base}.c`' in layout) \
        or f'`{path.rsplit("/", 1)[-1]}`' in layout
    if not named:
        failed.append(f'README layout does not name {path}')
print('README layout checked')

# 4. the README's options table is src/options.c's table
table = open('src/options.c').read()
table = table[table.index('option_specs[] = {'):]
table = table[:table.index('\n};')]
specs = {}
for m in re.finditer(r'\{"(\w+)", OPT_\w+, [^,]*, [^,]*, [^,]*, \w+, (NULL|"((?:[^"\\]|\\.)*)")', table):
    specs[m.group(1)] = None if m.group(2) == 'NULL' else m.group(3).replace('\\"', '"')
doc = readme[readme.index('### Options of `dmf_train`'):]
doc = doc[:doc.index('\n### ', 1)]
documented = {}
for row in doc.split('\n'):
    cells = [c.strip() for c in row.strip().strip('|').split('|')]
    if len(cells) < 3 or not cells[0].startswith('`'):
        continue
    names = re.findall(r'`(\w+)`', cells[0])
    values = re.findall(r'`([^`]*)`', cells[1])
    if values and len(values) != len(names):
        failed.append(f'README options: {len(names)} names but {len(values)} defaults in row {names}')
        continue
    for k, name in enumerate(names):
        documented[name] = values[k] if values else None
for name in sorted(set(specs) | set(documented)):
    if name not in documented:
        failed.append(f'README options table lacks "{name}"')
    elif name not in specs:
        failed.append(f'README options table has "{name}", which src/options.c does not')
    elif specs[name] != documented[name]:
        failed.append(f'README says "{name}" defaults to {documented[name]}, src/options.c to {specs[name]}')
print(f'README options table: {len(documented)} options, as src/options.c has them' if len(specs) == len(documented) else 'README options table checked')

for f in failed:
    print('FAILED:', f)
sys.exit(1 if failed else 0)
PY
echo ok
