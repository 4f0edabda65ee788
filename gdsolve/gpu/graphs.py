"""One epoch's device work recorded once as a CUDA graph and replayed (CuPy stream capture), so
an epoch of many small steps costs about one launch per kernel instead of one Python call each.
Callers: the GPU executors (gdsolve.gpu.linear, gdsolve.gpu.mlp).

The work must be capturable: no allocation and no host synchronisation inside it (the executors
write into buffers allocated once, with `out=`). The first epoch runs eagerly (it compiles and
loads every kernel); the second is captured and launched; later ones are launched. If capture
fails on a driver or a CuPy version that refuses something, epochs run eagerly from then on.
Under the CPU emulation (NumPy) there is nothing to capture: every epoch runs eagerly.
"""

import warnings


class EpochGraph:
    def __init__(self, runtime):
        self.rt = runtime
        self.graphs = {}
        self.epochs = 0
        self.enabled = not runtime.emulated

    @property
    def graph(self):
        """The graph of the epochs without a key (None until captured)."""
        return self.graphs.get(None)

    def run(self, enqueue, capturable=True, key=None):
        """Run `enqueue()` (one epoch's device work), from a captured graph when possible.
        Epochs whose work differs (Sophia's refreshing batches) pass a hashable `key`: one
        graph is recorded per key."""
        self.epochs += 1
        if not (self.enabled and capturable) or self.epochs == 1:
            enqueue()
            return
        key = key or None  # an empty pattern is the plain epoch
        if key not in self.graphs:
            graph = self._capture(enqueue)
            if graph is None:
                enqueue()
                return
            self.graphs[key] = graph
        self.graphs[key].launch()

    def _capture(self, enqueue):
        cupy = self.rt.xp
        stream = cupy.cuda.Stream(non_blocking=True)
        cupy.cuda.get_current_stream().synchronize()
        try:
            with stream:
                stream.begin_capture()
                try:
                    enqueue()
                finally:
                    graph = stream.end_capture()
            return graph
        except Exception as exc:  # a refusal of capture: run eagerly from now on
            warnings.warn(f"gdsolve: CUDA graph capture of an epoch failed ({exc}); epochs "
                          "run kernel by kernel", RuntimeWarning, stacklevel=3)
            self.enabled = False
            return None
