"""``ReconstructionMethod``: the LightningModule every reconstruction method builds on.

A method only says how it reconstructs (``forward(sinogram) -> image``); this base owns
training, validation and testing on :class:`~learnct.data.batch.CTBatch` batches, the loss,
metrics, logging, image panels, optimisers and schedulers.

Metrics (docs/methods.md): the per-image PSNR and SSIM of :mod:`learnct.evaluation` (data range
``max(gt) - min(gt)`` of each ground-truth image), averaged over the images of the split
(``MeanMetric`` weighted by the number of images, so the batch size does not matter; a NaN
batch makes the mean NaN instead of being dropped, as torchmetrics does by default). Logged
names: ``train/loss``, ``val/{loss,psnr,ssim}``, ``val/psnr_best`` (with several validation
sets Lightning appends ``/dataloader_idx_k``) and, per test set, ``test/<test set>/{loss,psnr,
ssim}``, ``test/<test set>/fbp_{psnr,ssim}`` (the FBP baseline on the same test measurements)
and ``test/<test set>/ms_per_slice`` (wall time of ``forward`` per slice after one warm-up call,
CUDA synchronised), also with a single test set. The test sets are named by the
:class:`~learnct.data.CTDataModule`'s ``sources["test"]`` (``test/ellipses/psnr``,
``test/shepp_logan/ssim``); test loaders without one are ``set_0``, ``set_1``, ... Validation
image panels: W&B images or a TensorBoard figure, and always the figure of
:func:`learnct.evaluation.panel_figure` as a PNG under ``<run folder>/panels/``.

Optimisation defaults (Adler and Öktem's LPD paper): Adam, lr 1e-3, betas (0.9, 0.99), cosine
decay to 0 over ``trainer.estimated_stepping_batches`` (stepped every optimiser step) and
gradient-norm clipping at 1.0. Clipping is a Trainer setting: pass
``Trainer(gradient_clip_val=method.gradient_clip_val)`` (``gradient_clip_val`` is an init
argument, saved in the hyperparameters).

Methods with nothing to train (``trainable = False``: FBP, TV) return no optimiser and skip
training steps with a warning: evaluate them with ``trainer.validate`` / ``trainer.test``.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from learnct.checks import check_int
from learnct.data.batch import CTBatch
from learnct.data.datamodule import CTDataModule, drop_stream_loader_state
from learnct.evaluation import Slice, panel_figure, per_image_psnr, per_image_ssim, save_figure
from learnct.methods.checkpoints import (
    checkpoint_identity,
    fit_state_dict,
    recorded_training,
    steps_after,
    steps_before,
    trained_steps,
    training_source,
)
from learnct.methods.fast_path import (
    check_fast_path,
    compile_step,
    grads_in_parameter_strides,
    has_grad_scaler,
    moments_in_parameter_strides,
    optimizer_options,
    own_execution_options,
)
from learnct.physics.fbp import check_filter, check_frequency_scaling, fbp
from learnct.physics.operator import RayTransform

__all__ = ["LOSSES", "ReconstructionMethod"]

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "smooth_l1": F.smooth_l1_loss,
}
SCHEDULER_INTERVALS = ("step", "epoch")
#: ``checkpoint["learnct"]``'s record of ``val/psnr_best`` (dB), restored on resume.
VAL_PSNR_BEST_KEY = "val_psnr_best"


class ReconstructionMethod(L.LightningModule):
    """Shared LightningModule of all reconstruction methods (see module docstring).

    Subclasses implement ``forward(sinogram) -> image`` (``(B, 1, A, D)`` noisy post-log
    line integrals in image units x mm -> ``(B, 1, N, N)`` images in image units) and call
    ``super().__init__(operator, ...)`` with their own arguments as keywords; the base saves
    every init argument except the operator as hyperparameters.

    Args:
        operator: the run's ``RayTransform`` (injected; the same object the DataModule
            simulates with). Not saved in the hyperparameters.
        optimizer: a partial (``functools.partial`` or Hydra ``_partial_: true``) taking the
            parameters, or ``None`` for Adam(lr=1e-3, betas=(0.9, 0.99)).
        scheduler: a partial taking the optimiser; ``"cosine"`` (default): cosine decay to 0
            over the run; ``None`` or ``"none"``: constant learning rate. A partial whose
            class takes ``T_max`` (``CosineAnnealingLR``) gets ``T_max`` = the run's
            optimiser steps unless the config sets it.
        scheduler_interval: ``"step"`` or ``"epoch"`` (how often a partial scheduler steps).
        loss: ``"mse"``, ``"l1"`` or ``"smooth_l1"``.
        gradient_clip_val: the gradient-norm clipping the train script passes to the Trainer.
        fbp_filter, fbp_frequency_scaling: FBP shown in the validation panels.
        n_panels: images per validation panel figure (0: none).
        fast_path: ``None`` (today's step), ``"eager"`` or ``"compiled"``: the training
            step without per-step host reads, optionally compiled whole (see
            :mod:`learnct.methods.fast_path`; set from ``trainer.fast_path``). An execution
            setting, not a hyperparameter: not saved in checkpoints.
    """

    #: False for methods with nothing to train (FBP, TV).
    trainable: ClassVar[bool] = True
    #: True for methods that use ``||A||`` (an ``operator_norm`` argument: TV, fully learned,
    #: LGD, LPD); without it they compute it by power iteration.
    needs_operator_norm: ClassVar[bool] = False
    #: True for methods that take the execution flags ``autocast`` and ``compile`` (the learned
    #: ones; LGD and LPD also ``checkpoint``).
    takes_execution_flags: ClassVar[bool] = False
    #: True for methods whose weights fix the geometry (the fully learned net's dense layers:
    #: sinogram and image sizes): they run on the geometry they were trained for only.
    fixed_geometry: ClassVar[bool] = False

    @property
    def result_name(self) -> str:
        """The method's name in results and tables: its class name (a variant overrides it)."""
        return type(self).__name__

    @staticmethod
    def with_own_fbp(
        filter: str, frequency_scaling: float, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The base's ``kwargs`` for a method that reconstructs through its own FBP (``filter``,
        ``frequency_scaling``, checked under those names): the panels' FBP is that one unless
        ``fbp_filter`` or ``fbp_frequency_scaling`` is given."""
        check_filter(filter)
        check_frequency_scaling(frequency_scaling)
        return {"fbp_filter": filter, "fbp_frequency_scaling": frequency_scaling, **kwargs}

    def __init__(
        self,
        operator: RayTransform,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | str | None = "cosine",
        scheduler_interval: str = "step",
        loss: str = "mse",
        gradient_clip_val: float | None = 1.0,
        fbp_filter: str = "hann",
        fbp_frequency_scaling: float = 1.0,
        n_panels: int = 2,
        fast_path: str | None = None,
    ) -> None:
        super().__init__()
        check_fast_path(fast_path)
        if not isinstance(operator, RayTransform):
            raise ValueError(f"operator must be a RayTransform, got {type(operator).__name__}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}: choose one of {sorted(LOSSES)}")
        if isinstance(scheduler, str) and scheduler not in ("cosine", "none"):
            raise ValueError(
                f"scheduler must be 'cosine', 'none', None or a partial: {scheduler!r}"
            )
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise ValueError(
                f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, "
                f"got {scheduler_interval!r}"
            )
        check_filter(fbp_filter, "fbp_filter")
        check_frequency_scaling(fbp_frequency_scaling, "fbp_frequency_scaling")
        if not isinstance(n_panels, int) or n_panels < 0:
            raise ValueError(f"n_panels must be an integer >= 0, got {n_panels!r}")
        # Collects the init arguments of the subclass too (Lightning walks the __init__ frames).
        # Optimiser and scheduler factories stay out of the checkpoint (it must load with
        # torch.load(weights_only=True)); a checkpoint loads with the defaults, and a resumed
        # run gets them from its config. The run's config holds what they were.
        self.save_hyperparameters(
            ignore=["operator", "optimizer", "scheduler", "fast_path", "channels_last"]
        )
        if isinstance(scheduler, str) or scheduler is None:
            self.hparams["scheduler"] = scheduler
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.operator = operator
        self.geometry = operator.geometry
        self.loss_fn = LOSSES[loss]
        self.train_loss = MeanMetric()
        self._eval_metrics = nn.ModuleDict()
        self.val_psnr_best = MaxMetric()
        self._test_sets: tuple[str, ...] = ()
        self._warm = False
        self._panels: dict[str, torch.Tensor] | None = None
        self._warned_untrainable = False
        self.fast_path = fast_path
        self._step_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self._loss_sum: torch.Tensor | None = None  # fast path: loss x images since last log
        self._loss_images = 0
        #: optimiser steps of the weights this run started from (``init_weights``), and of the
        #: weights in the module now: what a results row reports as ``train_steps`` (``None``:
        #: unknown, from a checkpoint that does not record them)
        self.steps_before: int | None = 0
        self.trained_steps: int | None = 0
        #: the run training these weights (:func:`~learnct.methods.checkpoints.weights_source`),
        #: saved in every checkpoint; set by ``learnct-train``
        self.weights_source: dict[str, Any] | None = None
        #: the data the weights in the module were last trained on (``data.source`` and the
        #: dose range, :func:`~learnct.methods.checkpoints.training_data`): what a results row
        #: reports as ``trained_on`` (``None``: untrained, or not recorded)
        self.trained_on: str | None = None

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, backend: str = "auto"
    ) -> ReconstructionMethod:
        """A committed model by name (``"lpd-fan_lowdose"``; ``learnct.pretrained_names()``
        lists them) or a checkpoint file, built from what the checkpoint stores (class,
        constructor arguments, geometry) with no overrides, in eval mode on the CPU. Called on
        a subclass (``LearnedPrimalDual.from_pretrained``) it refuses other methods'
        checkpoints (:func:`learnct.methods.pretrained.load_pretrained`)."""
        from learnct.methods.pretrained import load_pretrained

        expected = None if cls is ReconstructionMethod else cls
        return load_pretrained(name_or_path, expected=expected, backend=backend)

    # ---- reconstruction ------------------------------------------------------------------------
    def forward(self, sinogram: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``(B, 1, n_angles, n_detectors)`` -> ``(B, 1, N, N)``."""
        raise NotImplementedError

    def reconstruct(self, sinogram: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Reconstruct images from sinograms without a Trainer.

        Runs in eval mode without gradients (the previous mode is restored), on the module's
        device and in its dtype, in chunks of ``batch_size`` slices (default: all at once).
        Accepts ``(B, 1, A, D)``, ``(1, A, D)`` or ``(A, D)`` of the model's geometry, finite,
        and returns images with the same leading dimensions, on the input's device.
        """
        if not isinstance(sinogram, torch.Tensor):
            raise ValueError(f"sinogram must be a torch.Tensor, got {type(sinogram).__name__}")
        dims = sinogram.dim()
        if dims not in (2, 3, 4):
            raise ValueError(
                "sinogram must be (B, 1, n_angles, n_detectors), (1, n_angles, n_detectors) or "
                f"(n_angles, n_detectors), got {tuple(sinogram.shape)}"
            )
        if batch_size is not None:
            check_int("batch_size", batch_size)
        self._check_sinogram(sinogram)
        x = sinogram.reshape(-1, 1, *sinogram.shape[-2:]).to(self.device, self.dtype)
        chunk = batch_size or max(1, x.shape[0])
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = torch.cat([self(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])
        finally:
            self.train(was_training)
        out = out.to(sinogram.device)
        return out.reshape(*sinogram.shape[:-2], *out.shape[-2:])

    def _check_sinogram(self, sinogram: torch.Tensor) -> None:
        """``ValueError`` for a sinogram of another geometry (every method: the fully learned
        net would fail deep in its dense layers) or with a NaN or inf (which would come
        back as an image of NaN, or as an error about an "image")."""
        shape = self.geometry.sinogram_shape
        if tuple(sinogram.shape[-2:]) != shape or (sinogram.dim() == 4 and sinogram.shape[1] != 1):
            raise ValueError(
                f"sinogram must be (B, 1, {shape[0]}, {shape[1]}) for this model's geometry "
                f"({shape[0]} angles, {shape[1]} detector pixels), got {tuple(sinogram.shape)}: "
                "give data of the geometry it was trained for (its model card)"
            )
        if not sinogram.is_floating_point():
            raise ValueError(f"sinogram must be floating point, got {sinogram.dtype}")
        if not torch.isfinite(sinogram).all():
            raise ValueError("sinogram contains NaN or inf values: nothing to reconstruct from")

    def fbp(self, sinogram: torch.Tensor) -> torch.Tensor:
        """The FBP of the panels (``fbp_filter``, ``fbp_frequency_scaling``)."""
        return fbp(
            sinogram,
            self.geometry,
            filter=self.hparams.fbp_filter,
            frequency_scaling=self.hparams.fbp_frequency_scaling,
        )

    # ---- steps -----------------------------------------------------------------------------------
    @staticmethod
    def _check_batch(batch: Any) -> CTBatch:
        if not isinstance(batch, CTBatch):
            raise ValueError(
                f"expected a CTBatch (from CTDataModule.on_after_batch_transfer), "
                f"got {type(batch).__name__}"
            )
        return batch

    def training_step(self, batch: CTBatch, batch_idx: int) -> torch.Tensor | None:
        batch = self._check_batch(batch)
        if not self.trainable:
            if not self._warned_untrainable:
                warnings.warn(
                    f"{type(self).__name__} has nothing to train: training steps are skipped. "
                    "Evaluate it with trainer.validate / trainer.test.",
                    stacklevel=2,
                )
                self._warned_untrainable = True
            return None
        if self.fast_path is not None:
            return self._fast_training_step(batch)
        loss = self.training_loss(batch.sinogram, batch.image)
        self.train_loss(loss.detach(), batch.batch_size)
        self.log(
            "train/loss",
            self.train_loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch.batch_size,
        )
        return loss

    def training_loss(self, sinogram: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The loss of the reconstruction of ``sinogram`` against ``image``: a training
        step's forward (what the compiled fast path compiles)."""
        return self.loss_fn(self(sinogram), image)

    def _fast_training_step(self, batch: CTBatch) -> torch.Tensor:
        """The training step of ``fast_path`` (:mod:`learnct.methods.fast_path`): the loss
        summed on the device, read and logged every ``trainer.log_every_n_steps`` steps."""
        if self._step_loss is None:
            self._step_loss = self.training_loss
            if self.fast_path == "compiled":
                self._step_loss = compile_step(self.training_loss, self, self.device)
        if self.device.type == "cuda" and self.fast_path == "compiled":
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are dropped
        loss = self._step_loss(batch.sinogram, batch.image)
        weighted = loss.detach().float() * batch.batch_size
        self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
        self._loss_images += batch.batch_size
        every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        if (self.global_step + 1) % max(1, every) == 0:
            mean = float(self._loss_sum) / self._loss_images  # the one host read
            self.log("train/loss", mean, on_step=True, prog_bar=True, batch_size=1)
            self._loss_sum, self._loss_images = None, 0
        return loss

    def _metric(self, stage: str, name: str, dataloader_idx: int) -> MeanMetric:
        key = f"{stage}_{name}_{dataloader_idx}"
        if key not in self._eval_metrics:
            # NaN "replaced" by NaN: propagated, with the weights kept ("disable" drops them)
            metric = MeanMetric(nan_strategy=float("nan"))
            self._eval_metrics[key] = metric.to(self.device)
        return self._eval_metrics[key]

    def _evaluate(
        self,
        stage: str,
        batch: CTBatch,
        recon: torch.Tensor,
        dataloader_idx: int,
        prefix: str = "",
        test_set: str | None = None,
    ) -> None:
        """Log loss, PSNR and SSIM of ``recon``; with a ``prefix`` (the FBP baseline of the
        test set) only ``{prefix}psnr`` and ``{prefix}ssim``; with a ``test_set`` as
        ``{stage}/{test_set}/{name}``."""
        target = batch.image
        recon = recon.to(target.dtype)
        values = {
            "psnr": per_image_psnr(recon, target).mean(),
            "ssim": per_image_ssim(recon, target).mean(),
        }
        if not prefix:
            values["loss"] = self.loss_fn(recon, target).detach()
        for name, value in values.items():
            self._log_mean(stage, prefix + name, value, batch.batch_size, dataloader_idx, test_set)

    def _log_mean(
        self,
        stage: str,
        name: str,
        value: torch.Tensor | float,
        batch_size: int,
        dataloader_idx: int,
        test_set: str | None,
    ) -> None:
        """Add ``value`` to the split's mean of ``name`` (weighted by ``batch_size``) and log
        it as ``{stage}/{name}``, or ``{stage}/{test_set}/{name}`` (no dataloader suffix)."""
        metric = self._metric(stage, name, dataloader_idx)
        metric(value, batch_size)
        self.log(
            f"{stage}/{name}" if test_set is None else f"{stage}/{test_set}/{name}",
            metric,
            on_step=False,
            on_epoch=True,
            prog_bar=name == "psnr",
            batch_size=batch_size,
            metric_attribute=f"_eval_metrics.{stage}_{name}_{dataloader_idx}",
            add_dataloader_idx=test_set is None,
        )

    def validation_step(self, batch: CTBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        batch = self._check_batch(batch)
        recon = self(batch.sinogram)
        self._evaluate("val", batch, recon, dataloader_idx)
        if batch_idx == 0 and dataloader_idx == 0 and self.hparams.n_panels > 0:
            k = self.hparams.n_panels
            self._panels = {
                "ground truth": batch.image[:k].detach(),
                "FBP": self.fbp(batch.sinogram[:k]).detach(),
                "reconstruction": recon[:k].detach(),
            }

    def on_validation_epoch_end(self) -> None:
        key = "val_psnr_0"
        if key in self._eval_metrics and self._eval_metrics[key].update_count > 0:
            self.val_psnr_best(self._eval_metrics[key].compute())
            self.log("val/psnr_best", self.val_psnr_best.compute(), prog_bar=True)
        if self._panels is not None and not self.trainer.sanity_checking:
            self.log_panels(self._panels)
        self._panels = None

    def on_test_start(self) -> None:
        self._warm = False
        self._test_sets = _test_set_names(self.trainer.datamodule)

    def test_set_name(self, dataloader_idx: int) -> str:
        """The name of a test set in the logged metrics (see the module docstring)."""
        if dataloader_idx < len(self._test_sets):
            return self._test_sets[dataloader_idx]
        return f"set_{dataloader_idx}"

    def test_step(self, batch: CTBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        batch = self._check_batch(batch)
        sinogram = batch.sinogram
        if not self._warm:  # warm-up (kernels, caches, allocations) before timing
            self(sinogram)
            self._warm = True
        self._sync()
        start = time.perf_counter()
        recon = self(sinogram)
        self._sync()
        elapsed_ms = (time.perf_counter() - start) * 1e3
        test_set = self.test_set_name(dataloader_idx)
        size = batch.batch_size
        self._log_mean("test", "ms_per_slice", elapsed_ms / size, size, dataloader_idx, test_set)
        self._evaluate("test", batch, recon, dataloader_idx, test_set=test_set)
        # the FBP baseline on the very same measurements, so every results row carries it
        fbp_recon = self.fbp(sinogram)
        self._evaluate("test", batch, fbp_recon, dataloader_idx, prefix="fbp_", test_set=test_set)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- image panels ----------------------------------------------------------------------------
    def log_panels(self, panels: dict[str, torch.Tensor]) -> None:
        """Log ground truth, FBP, reconstruction and error map to the run's logger: W&B
        images (``WandbLogger.log_image``) or a TensorBoard figure; and, with any logger, the
        figure of :func:`~learnct.evaluation.panel_figure` as a small PNG
        ``<run folder>/panels/epoch<epoch>_step<step>.png`` (the run folder is
        ``trainer.default_root_dir``: the dashboard's validation images over steps). Nothing
        without a logger."""
        logger = self.logger
        if logger is None:
            return
        gt = panels["ground truth"].float().cpu()
        step = self.global_step
        if hasattr(logger, "log_image"):  # WandbLogger
            columns = {name: t.float().cpu() for name, t in panels.items()}
            columns["error"] = columns["reconstruction"] - gt
            images, captions = [], []
            for i in range(gt.shape[0]):
                for name, t in columns.items():
                    images.append(_to_unit(t[i, 0], gt[i, 0], error=name == "error"))
                    captions.append(f"{name} {i}")
            logger.log_image(key="val/panels", images=images, caption=captions, step=step)
        slices = [
            Slice(
                gt[i, 0],
                [(n, t.float().cpu()[i, 0]) for n, t in panels.items() if n != "ground truth"],
            )
            for i in range(gt.shape[0])
        ]
        fig = panel_figure(slices)
        if self.trainer.is_global_zero:
            name = f"epoch{self.current_epoch:04d}_step{step:07d}.png"
            save_figure(fig, Path(self.trainer.default_root_dir) / "panels" / name, dpi=80)
        experiment = None if hasattr(logger, "log_image") else getattr(logger, "experiment", None)
        if hasattr(experiment, "add_figure"):  # TensorBoard
            experiment.add_figure("val/panels", fig, global_step=step)

    # ---- checkpoints ---------------------------------------------------------------------------
    #: settings an ``init_weights`` checkpoint never overrides: those :meth:`adapt_state_dict`
    #: upgrades its weights to (the config's value stands, from the command line or a file)
    init_upgrades: ClassVar[frozenset[str]] = frozenset()

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Make the weights ``state`` of a related architecture fit this method, in place and
        computing the same function (e.g. zero weights on new input channels); a note per
        change. The base changes nothing."""
        return []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the method and geometry, so that ``check_checkpoint`` can refuse a
        checkpoint of another method or geometry, the steps of the weights the run started
        from (:func:`~learnct.methods.checkpoints.trained_steps`) and the run training them
        (:attr:`weights_source`); leave out the training
        loader's empty state (:func:`~learnct.data.datamodule.drop_stream_loader_state`)."""
        checkpoint["learnct"] = {
            **checkpoint_identity(self, self.geometry),
            "steps_before": self.steps_before,
        }
        if self.weights_source is not None:  # also in weights-only saves (a schedule's final)
            checkpoint["learnct"]["source"] = self.weights_source
        if self.val_psnr_best.update_count > 0:  # torchmetrics leaves metric states out
            checkpoint["learnct"][VAL_PSNR_BEST_KEY] = float(self.val_psnr_best.compute())
        drop_stream_loader_state(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A batch-norm checkpoint loads into the same net with ``norm=instance`` (see
        ``drop_instance_norm_statistics``): the unused running statistics are left out; the
        weights of a related architecture are made to fit (:meth:`adapt_state_dict`), except
        when resuming training (``optimizer_states``: their moments keep the old shapes).
        The steps that trained the weights come along (``steps_before``, ``trained_steps``,
        and the data they trained on, ``trained_on``),
        and a resumed run's ``val/psnr_best`` (saved beside them: metric states are not)."""
        self.steps_before = steps_before(checkpoint)
        self.trained_steps = trained_steps(checkpoint)
        self.trained_on = training_source(checkpoint)
        best = checkpoint.get("learnct", {}).get(VAL_PSNR_BEST_KEY)
        if best is not None and checkpoint.get("optimizer_states"):  # a resumed run's best so far
            self.val_psnr_best.update(torch.tensor(best, device=self.val_psnr_best.device))
        state = checkpoint.get("state_dict")
        if isinstance(state, dict):
            for note in fit_state_dict(self, state, adapt=not checkpoint.get("optimizer_states")):
                print(note)

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not self.trainable or not params:
            return None
        factory = self.optimizer_factory
        if factory is None:
            factory = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.9, 0.99))
        options = {} if self.fast_path is None else optimizer_options(factory, self.device)
        trainer = self._trainer
        if options.get("fused") and trainer is not None and has_grad_scaler(trainer):
            if trainer.gradient_clip_val:  # fp16's scaled gradients must be unscaled to clip
                options = {"foreach": True}
        optimizer = factory(params=params, **options)
        scheduler = self.scheduler_factory
        if scheduler is None or scheduler == "none":
            return optimizer
        interval = self.hparams.scheduler_interval
        total = self._total_steps(interval)
        if scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0)
        else:
            kwargs = {}
            func = scheduler.func if isinstance(scheduler, functools.partial) else scheduler
            try:
                sig = inspect.signature(func)
            except (TypeError, ValueError):
                sig = None
            bound = getattr(scheduler, "keywords", {}) or {}
            if sig is not None and "T_max" in sig.parameters and "T_max" not in bound:
                kwargs["T_max"] = total
            sched = scheduler(optimizer=optimizer, **kwargs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": interval}}

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's clipping, except for a fused optimiser without a GradScaler (the fast
        path on CUDA, bf16-mixed or float32): Lightning's mixed-precision plugin refuses to
        clip any fused optimiser's gradients, which only fp16's scaled ones need; these are
        true gradients, clipped here on the device as Lightning would."""
        fused = optimizer.defaults.get("fused") and not has_grad_scaler(self.trainer)
        if not (fused and gradient_clip_val):
            super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """A fused optimiser's gradients in their parameters' strides (the compiled backward
        can return others: :func:`~learnct.methods.fast_path.grads_in_parameter_strides`)."""
        super().on_before_optimizer_step(optimizer)
        grads_in_parameter_strides(optimizer)

    def on_train_start(self) -> None:
        """After a resume, the optimiser runs as this run built it (a checkpoint saved on
        another device or fast path: :func:`~learnct.methods.fast_path.own_execution_options`)
        with its moments in their parameters' layout (another ``channels_last``:
        :func:`~learnct.methods.fast_path.moments_in_parameter_strides`)."""
        super().on_train_start()
        for optimizer in self.trainer.optimizers:
            own_execution_options(optimizer)
            moments_in_parameter_strides(optimizer)

    def on_train_end(self) -> None:
        """The weights in memory have had this run's steps on top of those it started from,
        on this run's data."""
        super().on_train_end()
        self.trained_steps = steps_after(self.steps_before, self.trainer.global_step)
        self.trained_on = recorded_training(self.weights_source)

    def _total_steps(self, interval: str) -> int:
        trainer = self._trainer
        if trainer is None:
            return 1
        if interval == "epoch":
            epochs = trainer.max_epochs
            return max(1, epochs if epochs is not None and epochs > 0 else 1)
        steps = trainer.estimated_stepping_batches
        return max(1, int(steps) if math.isfinite(steps) else 1)


def _test_set_names(datamodule: Any) -> tuple[str, ...]:
    """The test sets of a :class:`CTDataModule` in dataloader order; none for other data."""
    return tuple(datamodule.sources["test"]) if isinstance(datamodule, CTDataModule) else ()


def _to_unit(image: torch.Tensor, gt: torch.Tensor, error: bool = False) -> Any:
    """An image as 8-bit grey levels (a ``uint8`` NumPy array, 0..255) on the ground truth's
    grey scale (error maps: symmetric, 128 = no error). W&B stores arrays as they are cast to
    ``uint8``, so floats in [0, 1] would all be black."""
    lo, hi = float(gt.min()), float(gt.max())
    span = max(hi - lo, 1e-12)
    unit = (image / span * 0.5 + 0.5) if error else (image - lo) / span
    return (unit.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
