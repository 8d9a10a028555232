"""Fast CPU evaluation: the current weights exported to a static graph and run by a Paddle
Inference predictor with oneDNN kernels (about 3x dygraph here; logits equal within 1e-6).

Why not ``paddle.jit.to_static`` with ``FLAGS_use_mkldnn`` directly: in Paddle 3.3 CPU that path
segfaults on MaxPool2D with padding and on AdaptiveAvgPool2D (every ResNet-based model), and
static *training* with oneDNN silently computes no gradients. The predictor route is the
deployment path, exercised far more; training never touches it and stays in dygraph.
The predictor is the one tools/infer.py deploys with (ppcls.inference.predictor.PaddleBackend,
which also switches off Paddle 3.3's transposed-conv + BN fusion that miscompiles ED-Net's grouped
decoders). A model the predictor still cannot build is evaluated in dygraph, with a warning.
"""
import contextlib
import os
import shutil
import tempfile

import paddle

from ..utils.logger import get_logger


class PredictorForward:
    """``forward(images) -> logits`` through a oneDNN predictor of ``model``'s current weights.

    The export happens at the first call (the input's C x H x W is fixed then; the batch size
    stays dynamic) and again if that shape changes. ``close()`` removes the temporary export.
    """

    def __init__(self, model, threads=0):
        self.model, self.threads = model, threads
        self.predictor, self.shape, self.tmp, self.failed = None, None, None, False

    def _build(self, shape):
        from ..inference.export import MODEL_PREFIX, model_files
        from ..inference.predictor import PaddleBackend
        self.close()
        self.tmp = tempfile.mkdtemp(prefix="ppcls_eval_")
        spec = [paddle.static.InputSpec([None, *shape], "float32", "x")]
        paddle.jit.save(self.model, os.path.join(self.tmp, MODEL_PREFIX), input_spec=spec)
        self.predictor = PaddleBackend(*model_files(self.tmp), use_gpu=False,
                                       cpu_threads=max(1, self.threads or 1))
        self.shape = shape

    def __call__(self, images):
        shape = tuple(images.shape[1:])
        if not self.failed and (self.predictor is None or shape != self.shape):
            try:
                self._build(shape)
            except Exception as e:  # noqa: BLE001 - Paddle raises many kinds here
                self.failed = True
                self.close()
                get_logger().warning(f"fast (oneDNN predictor) evaluation unavailable for "
                                     f"{type(self.model).__name__}: {str(e).splitlines()[-1][:200]}; "
                                     f"evaluating in dygraph")
        if self.failed:
            return self.model(images)
        return paddle.to_tensor(self.predictor(images.numpy()))

    def close(self):
        self.predictor = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


@contextlib.contextmanager
def eval_forward(model, use_static=True, on_cpu=True, threads=0):
    """Yield the callable to evaluate ``model`` with: the oneDNN predictor on CPU when
    ``use_static``, else the dygraph model itself."""
    if not (use_static and on_cpu):
        yield model
        return
    forward = PredictorForward(model, threads)
    try:
        yield forward
    finally:
        forward.close()
