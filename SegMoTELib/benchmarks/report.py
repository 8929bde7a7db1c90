"""A `run_benchmarks` result as a Markdown fragment (the table BENCHMARKS.md holds)."""

from __future__ import annotations

from .contenders import FAST, ONNX, OURS, REFERENCE


def _latency(stats: dict) -> str:
    scale, unit = (1e3, "ms") if stats["median_s"] < 1.0 else (1.0, "s")
    return (f"{stats['median_s'] * scale:.{_digits(stats['median_s'] * scale)}f} {unit} "
            f"[{stats['q1_s'] * scale:.{_digits(stats['q1_s'] * scale)}f}–{stats['q3_s'] * scale:.{_digits(stats['q3_s'] * scale)}f}]")


def _digits(value: float) -> int:
    return 2 if value < 10 else 1 if value < 100 else 0


def _rate(stats: dict, work: int) -> str:
    median, low, high = work / stats["median_s"], work / stats["q3_s"], work / stats["q1_s"]
    digits = _digits(median)
    return f"{median:,.{digits}f} /s [{low:,.{digits}f}–{high:,.{digits}f}]"


def _cell(row: dict, name: str) -> str:
    stats = row["results"].get(name)
    if stats is None:
        return "—"
    return _rate(stats, row["work"]) if row["kind"] == "throughput" else _latency(stats)


def _speedup(row: dict, name: str, reference: str = REFERENCE) -> str:
    ours, base = row["results"].get(name), row["results"].get(reference)
    if ours is None or base is None:
        return "—"
    return f"{base['median_s'] / ours['median_s']:.2f}×"


def _cpu_line(row: dict) -> str:
    """Process CPU seconds per call (all threads): less sensitive than wall time to other jobs."""
    cpu = {name: stats.get("cpu_median_s") for name, stats in row["results"].items()}
    if any(value is None for value in cpu.values()) or row["kind"] != "latency":
        return ""
    parts = [f"{name} {value * 1e3:.0f} ms" if value < 1 else f"{name} {value:.2f} s" for name, value in cpu.items()]
    return f"- {row['measurement']}, CPU time per call (median, all threads): " + ", ".join(parts)


def machine_line(result: dict) -> str:
    machine = result["machine"]
    where = f"GPU {machine['gpu']} (CUDA {machine['cuda']})" if "gpu" in machine else \
        f"CPU {machine['cpu']}, {machine['torch_threads']} torch threads of {machine['cpu_cores']} cores"
    load, start = machine.get("load_average"), result.get("load_at_start")
    load_text = (f", load average (1 min) at the start {start[0]:.1f}" if start else "") + \
        (f", at the end {load[0]:.1f}" if load else "")
    allocator = " glibc mmap threshold raised for every contender (as optimize does);" \
        if result.get("allocator_tuned") else ""
    return (f"{where}; torch {machine['torch']}, Python {machine['python']}{load_text};{allocator} "
            f"fast path = {result['fast_path']}; SegMoTE decoder: {result['adapter']}.")


def format_markdown(result: dict) -> str:
    """One table: median [interquartile range] of each contender, the speed-ups over the reference
    (on a CPU with ONNX Runtime: PyTorch default, PyTorch fast and the ONNX Runtime CPU runtime)."""
    has_bf16 = any(f"{REFERENCE}, bf16" in row["results"] for row in result["rows"])
    has_onnx = any(ONNX in row["results"] for row in result["rows"])
    names = ["ours (PyTorch)", "ours (PyTorch, fast)", "ours (ONNX Runtime)"] if has_onnx else \
        ["ours (default)", "ours (fast)"]
    speedups = ["speed-up PyTorch", "speed-up PyTorch fast", "speed-up ONNX Runtime"] if has_onnx else \
        ["speed-up default", "speed-up fast"]
    header = ["measurement", "reference LiteMedSAM", *names, *speedups]
    if has_bf16:
        header[2:2] = ["reference, bf16"]
        header.append("fast vs reference bf16")
    lines = [machine_line(result), "", "| " + " | ".join(header) + " | target |",
             "|" + "---|" * (len(header) + 1)]
    contenders = [OURS, FAST, ONNX] if has_onnx else [OURS, FAST]
    for row in result["rows"]:
        cells = [row["measurement"], _cell(row, REFERENCE)]
        if has_bf16:
            cells.append(_cell(row, f"{REFERENCE}, bf16"))
        cells += [_cell(row, name) for name in contenders] + [_speedup(row, name) for name in contenders]
        if has_bf16:
            cells.append(_speedup(row, FAST, f"{REFERENCE}, bf16"))
        cells.append(row.get("target") or "")
        lines.append("| " + " | ".join(cells) + " |")
    details = [f"- {row['measurement']}: {row['detail']}" for row in result["rows"] if row.get("detail")]
    if "gpu" not in result["machine"]:
        details += [_cpu_line(row) for row in result["rows"] if _cpu_line(row)]
    if details:
        lines += ["", *details]
    lines += [f"- {note}" for note in result.get("notes", [])]
    for error in result.get("errors", []):
        lines.append(f"- **not measured** — {error}")
    for failure in result.get("cuda_graph_failures", []):
        lines.append(f"- CUDA graph capture failed for some shapes (they ran eagerly): {failure}")
    if result.get("compile_failure"):
        lines.append(f"- compiling the encoder failed (it ran eagerly): {result['compile_failure']}")
    settings = result["settings"]
    lines += ["", f"Repeats: latency {settings['repeats']}, embedding {settings['embed_repeats']}, "
                  f"propagation {settings['volume_repeats']}; wall time of the run {result['wall_seconds']:.0f} s."]
    return "\n".join(lines)


def format_sweep(results: list[dict]) -> str:
    """The rows every thread count measured, one column per (contender, thread count), and how much
    the largest count gains over one thread: what a user with more cores can extrapolate from."""
    counts = [result["settings"]["threads"] for result in results]
    rows = {count: {row["measurement"]: row for row in result["rows"]} for count, result in zip(counts, results)}
    shared = [name for name in rows[counts[0]] if all(name in rows[count] for count in counts)]
    contenders = [name for name in (REFERENCE, OURS, FAST, ONNX)
                  if any(name in rows[counts[0]][measurement]["results"] for measurement in shared)]
    labels = {REFERENCE: "reference", OURS: "PyTorch", FAST: "PyTorch fast", ONNX: "ONNX Runtime"}
    header = ["measurement"] + [f"{labels[name]}, {count} thr." for name in contenders for count in counts]
    header += [f"{labels[name]} {counts[-1]} vs {counts[0]} thr." for name in contenders]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for measurement in shared:
        cells = [measurement]
        for name in contenders:
            cells += [_cell(rows[count][measurement], name) for count in counts]
        for name in contenders:
            first, last = (rows[count][measurement]["results"].get(name) for count in (counts[0], counts[-1]))
            cells.append(f"{first['median_s'] / last['median_s']:.2f}×" if first and last else "—")
        lines.append("| " + " | ".join(cells) + " |")
    loads = "; ".join(f"{count} thread{'s' if count > 1 else ''}: {_loads(result)}" for count, result in zip(counts, results))
    return "\n".join([f"Thread sweep (medians [IQR]; load average (1 min) {loads})", "", *lines])


def _loads(result: dict) -> str:
    start, end = result.get("load_at_start"), result["machine"].get("load_average")
    return f"{start[0]:.1f} → {end[0]:.1f}" if start and end else "not available"
