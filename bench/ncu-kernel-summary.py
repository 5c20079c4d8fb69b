# Kernels from an Nsight Compute CSV log (`ncu --csv --metrics gpu__time_duration.sum`), grouped by kernel name and
# grid, heaviest first. `--after REGEX` keeps only the kernels after the first one whose name matches REGEX, up to
# and including the next match (one training step between two optimizer kernels); without it, every kernel.
#   python3 bench/ncu-kernel-summary.py ncu-step.log.xz --after adamw > ncu-step.summary.txt
import argparse, collections, csv, lzma, re

ap = argparse.ArgumentParser()
ap.add_argument('log')
ap.add_argument('--after', default=None)
args = ap.parse_args()
opener = lzma.open if args.log.endswith('.xz') else open
with opener(args.log, 'rt') as f:
    lines = [line for line in f if line.startswith('"')]
kernels = collections.OrderedDict()
for r in csv.DictReader(lines):
    k = kernels.setdefault(r['ID'], {'name': r['Kernel Name'], 'grid': r['Grid Size']})
    k[r['Metric Name']] = float(r['Metric Value'].replace(',', ''))
chosen = list(kernels.values())
if args.after:
    marks = [i for i, k in enumerate(chosen) if re.search(args.after, k['name'])]
    if len(marks) < 2:
        raise SystemExit('fewer than two kernels match --after %s (%d)' % (args.after, len(marks)))
    chosen = chosen[marks[0] + 1 : marks[1] + 1]


def without_parameters(name):
    # the demangled name ends with its parameter list: cut at the '(' that opens the last top-level group
    depth, cut = 0, len(name)
    for i in range(len(name) - 1, -1, -1):
        depth += {')': 1, '(': -1}.get(name[i], 0)
        if depth == 0 and name[i] == '(':
            cut = i
            break
    return name[:cut]


groups = collections.OrderedDict()
for k in chosen:
    name = re.sub(r'^void ', '', k['name'])
    name = without_parameters(name)[:110]
    g = groups.setdefault((name, k['grid']), [0, 0.0])
    g[0] += 1
    g[1] += k['gpu__time_duration.sum'] / 1e3
total_us = sum(g[1] for g in groups.values())
print('%d kernels, %.1f us (each kernel timed alone, one after another)' % (len(chosen), total_us))
print('   total us  count  us each  kernel grid')
for (name, grid), (count, us) in sorted(groups.items(), key=lambda item: -item[1][1]):
    print('%10.1f %6d %8.2f  %s %s' % (us, count, us / count, name, grid))
