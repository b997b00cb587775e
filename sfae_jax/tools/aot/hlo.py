"""What a compiled program does, read from its optimised HLO text.

XLA's `cost_analysis()` is empty for GPU programs and its memory figures say
nothing of collectives or kernels, so the fit check reads the program itself:
the all-reduces (and other collectives) with the bytes they move, the ops the
entry computation launches (on a GPU, roughly one kernel each), and the operand
types of every convolution and matmul.

The text is XLA's `HloModule::ToString()`: one instruction per line,
`%name = TYPE op(%operand, ...), attrs, metadata={op_name="jit(f)/.../module/op"}`,
where TYPE is `f32[8,64]{1,0}` or a tuple of those.
"""

from __future__ import annotations

import collections
import dataclasses
import re

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.+?)\s+([\w\-$]+)\((.*)$")
_SHAPE = re.compile(r"\b(pred|s4|s8|s16|s32|s64|u4|u8|u16|u32|u64|f8e4m3fn|f8e5m2|"
                    r"bf16|f16|f32|f64|c64|c128)\[([\d,]*)\](\{[^}]*\})?")
_OPERAND = re.compile(r"%([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_TARGET = re.compile(r'custom_call_target="([^"]*)"')
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_SLICES = ("slice", "dynamic-slice")
BYTES = {"pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1,
         "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f32": 4,
         "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
COLLECTIVES = ("all-reduce", "all-reduce-start", "all-gather", "all-gather-start",
               "reduce-scatter", "collective-permute", "collective-permute-start",
               "all-to-all")
# Entry-computation ops that launch no kernel of their own.
_NO_KERNEL = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast",
              "after-all", "partition-id", "replica-id", "all-reduce-done",
              "all-gather-done", "collective-permute-done", "copy-done",
              "slice-done", "async-done", "opt-barrier", "add-dependency"}
_MATMUL_TARGETS = ("__cudnn$conv", "__cublas$gemm", "__cublas$lt$matmul")


@dataclasses.dataclass(frozen=True)
class Shape:
  dtype: str
  dims: tuple[int, ...]
  on_chip: bool       # layout in a memory space other than HBM (`S(1)`: TPU VMEM)

  @property
  def bytes(self) -> int:
    n = BYTES.get(self.dtype, 4)
    for d in self.dims:
      n *= d
    return n


@dataclasses.dataclass
class Instruction:
  name: str
  shapes: list[Shape]  # of its result (a tuple's elements in order)
  op: str
  operands: list[str]
  op_name: str        # the traced jax op's path, '' when XLA made the op up
  target: str         # custom-call target, '' otherwise
  calls: str = ""     # a fusion's fused computation
  args: str = ""      # what stands in the parentheses (a parameter's index)

  @property
  def bytes(self) -> int:
    return sum(s.bytes for s in self.shapes)

  @property
  def hbm_bytes(self) -> int:
    return sum(s.bytes for s in self.shapes if not s.on_chip)


@dataclasses.dataclass
class Computation:
  name: str
  entry: bool
  instructions: list[Instruction]


def _shapes(text: str) -> list[Shape]:
  return [Shape(t, tuple(int(d) for d in dims.split(",") if d),
                "S(" in layout and "S(0)" not in layout)
          for t, dims, layout in _SHAPE.findall(text)]


def parse(text: str) -> list[Computation]:
  comps, current = [], None
  for line in text.splitlines():
    stripped = line.strip()
    if stripped.endswith("{") and "=" not in stripped.split("(")[0]:
      entry = stripped.startswith("ENTRY")
      name = stripped.split()[1 if entry else 0].lstrip("%")
      current = Computation(name, entry, [])
      comps.append(current)
      continue
    m = _INSTR.match(line)
    if m is None or current is None:
      continue
    name, type_text, op, rest = m.groups()
    args = rest.split("),", 1)[0]
    if args.endswith(")"):  # the closing parenthesis ended the line
      args = args[:-1]
    op_name = _OP_NAME.search(rest)
    target = _TARGET.search(rest)
    calls = _CALLS.search(rest)
    current.instructions.append(Instruction(
        name, _shapes(type_text), op, _OPERAND.findall(args),
        op_name.group(1) if op_name else "", target.group(1) if target else "",
        calls.group(1) if calls else "", args))
  return comps


def _fused_reads(fusion: Instruction, k: int, operand: Instruction,
                 bodies: dict[str, Computation]) -> int:
  """Bytes a fusion reads of its k-th operand: only the slices it takes, when its
  fused computation does nothing with that parameter but slice it."""
  body = bodies.get(fusion.calls)
  param = next((i for i in body.instructions if i.op == "parameter"
                and i.args.strip() == str(k)), None) if body else None
  users = [i for i in body.instructions if param and param.name in i.operands
           ] if body else []
  if users and all(u.op in _SLICES for u in users):
    return sum(u.bytes for u in users)
  return operand.hbm_bytes


def _traffic(i: Instruction, defined: dict[str, Instruction],
             bodies: dict[str, Computation]) -> int:
  """HBM bytes one launched op reads and writes. Buffers on chip (TPU VMEM) cost
  nothing; a slice reads what it keeps; an async copy or slice (`*-start`: a
  (source, destination, context) tuple) reads and writes its destination's size."""
  if i.op.endswith("-start") and len(i.shapes) >= 2:
    src, dst = i.shapes[0], i.shapes[1]
    return (0 if src.on_chip else dst.bytes) + (0 if dst.on_chip else dst.bytes)
  written = i.hbm_bytes
  if i.op in _SLICES:
    source = defined.get(i.operands[0]) if i.operands else None
    return written + (i.bytes if source and source.hbm_bytes else 0)
  read = 0
  for k, name in enumerate(i.operands):
    operand = defined.get(name)
    if operand is None or name in i.operands[:k]:
      continue
    read += (_fused_reads(i, k, operand, bodies) if i.op == "fusion"
             else operand.hbm_bytes)
  return written + read


@dataclasses.dataclass
class Summary:
  collectives: dict[str, int]        # op -> count
  collective_bytes: int              # bytes of every collective's result
  all_reduce_bytes: int
  kernels: int                       # entry ops that launch work
  kernel_kinds: dict[str, int]
  kernel_bytes: int                  # HBM bytes those ops read and write (what a
                                     # kernel reads of an operand is taken whole
                                     # unless it only slices it)
  loops: int                         # while loops (the CPU kernels' lax.map has
                                     # them; the accelerator forms have none)
  matmuls: int                       # convolutions + dots (+ library calls)
  wide_matmuls: list[str]            # op_name of those with a non-bf16 float input


def summarise(text: str) -> Summary:
  comps = parse(text)
  defined = {i.name: i for c in comps for i in c.instructions}
  colls, coll_bytes, ar_bytes = collections.Counter(), 0, 0
  for c in comps:
    for i in c.instructions:
      if i.op in COLLECTIVES:
        colls[i.op.replace("-start", "")] += 1
        coll_bytes += i.bytes
        if i.op.startswith("all-reduce"):
          ar_bytes += i.bytes
  entry = next((c for c in comps if c.entry), Computation("", True, []))
  launched = [i for i in entry.instructions if i.op not in _NO_KERNEL]
  kinds = collections.Counter(i.op for i in launched)
  bodies = {c.name: c for c in comps}
  traffic = sum(_traffic(i, defined, bodies) for i in launched)
  matmuls, wide = 0, []
  for c in comps:
    for i in c.instructions:
      library = i.op == "custom-call" and i.target.startswith(_MATMUL_TARGETS)
      if i.op not in ("convolution", "dot") and not library:
        continue
      matmuls += 1
      inputs = [defined[o].shapes[0].dtype for o in i.operands[:2]
                if o in defined and defined[o].shapes]
      if any(t in ("f32", "f64", "f16") for t in inputs):
        wide.append(i.op_name or i.name)
  loops = sum(i.op == "while" for c in comps for i in c.instructions)
  return Summary(dict(colls), coll_bytes, ar_bytes, len(launched),
                 dict(kinds.most_common()), traffic, loops, matmuls, wide)
