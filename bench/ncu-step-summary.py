# A decode step's kernels from an Nsight Compute CSV log, grouped by kernel and grid, heaviest first: what
# bench/results/logs/stop*/…/ncu-decode-*.summary.txt hold. The log is `ncu --csv --metrics
# gpu__time_duration.sum,dram__bytes_read.sum` over two decode steps (the bench's --profile-at); the first is summed.
#   python3 bench/ncu-step-summary.py ncu-decode-2k.log.xz > ncu-decode-2k.summary.txt
import collections, csv, lzma, re, sys

path = sys.argv[1]
opener = lzma.open if path.endswith('.xz') else open
with opener(path, 'rt') as f:
    lines = [line for line in f if line.startswith('"')]
kernels = collections.OrderedDict()
for r in csv.DictReader(lines):
    k = kernels.setdefault(r['ID'], {'name': r['Kernel Name'], 'grid': r['Grid Size']})
    k[r['Metric Name']] = float(r['Metric Value'].replace(',', ''))
step = list(kernels.values())[: len(kernels) // 2]
groups = collections.OrderedDict()
for k in step:
    name = re.sub(r'^void ', '', re.sub(r'\(.*', '', k['name']))
    g = groups.setdefault((name, k['grid']), [0, 0.0, 0.0])
    g[0] += 1
    g[1] += k['gpu__time_duration.sum'] / 1e3
    g[2] += k.get('dram__bytes_read.sum', 0.0)
total_us = sum(g[1] for g in groups.values())
total_bytes = sum(g[2] for g in groups.values())
print('one decode step (the first of the two profiled): %d kernels, %.0f us (each kernel timed alone), '
      '%.1f MB read from DRAM' % (len(step), total_us, total_bytes / 1e6))
print('   total us  count  us each   MB each  GB/s  kernel grid')
for (name, grid), (count, us, read) in sorted(groups.items(), key=lambda item: -item[1][1]):
    print('%10.1f %6d %8.2f %9.2f %5.0f  %s %s' % (us, count, us / count, read / count / 1e6,
                                                   (read / count) / (us / count * 1e3), name, grid))
