# The list-scheduling model behind the Hopper attention kernels' LPT CTA order (native/cuda/attention/heuristics.h,
# hopper_lpt_section): the hardware hands each CTA, in the grid's linear order, to the multiprocessor that frees
# first; a causal tile's CTA costs its number of key tiles (forward: query tile t sees t + 1) plus a fixed overhead.
# Prints the makespan in tile-times for head by head (a section of 1, the order before stop 26) and for sections of
# S heads, longest tiles first with the section's heads fastest, at andromeda-3b's 2,048 tokens.
#   python3 bench/attention-lpt-model.py
import heapq

SMS, TILES, HEADS = 132, 16, 24


def makespan(costs, overhead):
    free = [0.0] * SMS
    for cost in costs:
        heapq.heappush(free, heapq.heappop(free) + cost + overhead)
    return max(free)


def order(section):
    costs = []
    for first in range(0, HEADS, section):
        heads = range(first, min(HEADS, first + section))
        for rank in range(TILES):
            costs += [TILES - rank for _ in heads]
    return costs


for overhead in (0.5, 1, 2, 3):
    ideal = sum(c + overhead for c in order(1)) / SMS
    cells = ', '.join('S=%d %.1f' % (s, makespan(order(s), overhead)) for s in (1, 8, 12, 16, 24))
    print('overhead %.1f tile-times a CTA: lower bound %.1f; %s' % (overhead, ideal, cells))
