"""Preference losses: DPO / cDPO, IPO, SimPO and TDPO (sequence level), RRPO, DPA and DDPO (token level).

Each is a :class:`~savi_plugin.losses.base.PreferenceLoss` registered under the entry-point group
``savi_plugin.losses`` (``ddpo``, ``dpa``, ``dpo``, ``ipo``, ``rrpo``, ``simpo``, ``tdpo``; see setup.cfg), so a third party adds its
own loss with one file and one entry point, not by editing this package or the trainer.
"""

from savi_plugin.losses.base import (LossOutput, PreferenceLoss, Requirements, SequenceInputs, TokenInputs,
                                     weighted_mean)
from savi_plugin.losses.ddpo import ddpo_loss
from savi_plugin.losses.dpa import dpa_loss
from savi_plugin.losses.dpo import dpo_loss, ipo_loss
from savi_plugin.losses.rrpo import RRPOOutput, rrpo_loss
from savi_plugin.losses.simpo import simpo_loss
from savi_plugin.losses.tdpo import tdpo_loss

__all__ = ["LossOutput", "PreferenceLoss", "RRPOOutput", "Requirements", "SequenceInputs", "TokenInputs",
           "ddpo_loss", "dpa_loss", "dpo_loss", "ipo_loss", "rrpo_loss", "simpo_loss", "tdpo_loss", "weighted_mean"]
