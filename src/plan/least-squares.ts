/**
 * Ordinary least squares: the coefficients x minimising |A·x − b|², from the normal equations (AᵀA)·x = Aᵀb
 * solved by Gaussian elimination with partial pivoting. For the planner's calibration fits: a handful of
 * unknowns over a few dozen measurements. Each column is scaled to a largest magnitude of 1 first, so that
 * unknowns of very different sizes (seconds per step beside seconds per byte) do not ruin the conditioning.
 */
export function fitLeastSquares(a: readonly (readonly number[])[], b: readonly number[]): number[] {
  const unknowns = a[0]?.length ?? 0;
  if (a.length !== b.length) throw new Error(`fitLeastSquares: ${a.length} rows but ${b.length} right-hand sides`);
  if (a.length < unknowns || unknowns === 0)
    throw new Error(`fitLeastSquares: ${a.length} measurements cannot determine ${unknowns} unknowns`);
  if (a.some((row) => row.length !== unknowns)) throw new Error('fitLeastSquares: rows of different lengths');
  const scale = Array.from({ length: unknowns }, (_, j) => Math.max(...a.map((row) => Math.abs(row[j]!))) || 1);
  const scaled = a.map((row) => row.map((x, j) => x / scale[j]!));
  // The augmented system [AᵀA | Aᵀb] of the scaled columns.
  const m = Array.from({ length: unknowns }, (_, i) => {
    const row = Array.from({ length: unknowns + 1 }, () => 0);
    for (let r = 0; r < scaled.length; r++) {
      for (let j = 0; j < unknowns; j++) row[j]! += scaled[r]![i]! * scaled[r]![j]!;
      row[unknowns]! += scaled[r]![i]! * b[r]!;
    }
    return row;
  });
  for (let col = 0; col < unknowns; col++) {
    let pivot = col;
    for (let r = col + 1; r < unknowns; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    if (Math.abs(m[pivot]![col]!) < 1e-12)
      throw new Error(`fitLeastSquares: the measurements do not separate unknown ${col} from the others`);
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    for (let r = 0; r < unknowns; r++) {
      if (r === col) continue;
      const factor = m[r]![col]! / m[col]![col]!;
      for (let j = col; j <= unknowns; j++) m[r]![j]! -= factor * m[col]![j]!;
    }
  }
  return m.map((row, i) => row[unknowns]! / row[i]! / scale[i]!);
}
