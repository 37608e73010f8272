"""Admission-control scenarios on virtual time: the real admission objects in front of
the simulator's engine (`harness`, on `vtime`'s loop), the generated battery and its
oracles (`context`, `defs`), what a run is judged by (`metrics`) and its plots."""
