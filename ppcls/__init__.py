"""ppcls-repro: PaddlePaddle reproductions of DLA, ECA-Net, RLA-Net, ED-Net and ReXNet."""
__version__ = "0.1.0"
