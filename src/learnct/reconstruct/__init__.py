"""``learnct-reconstruct``: reconstruct your own data (docs/reconstruct.md).

- :mod:`~learnct.reconstruct.readers`: image volumes and measured sinograms;
- :mod:`~learnct.reconstruct.physics_spec`: the geometry from a preset or a YAML file;
- :mod:`~learnct.reconstruct.engine`: the method, simulation and the batched loop;
- :mod:`~learnct.reconstruct.writers`: DICOM, NIfTI, NumPy and PNG output in HU;
- :mod:`~learnct.reconstruct.cli`: the command.
"""
