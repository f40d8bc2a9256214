"""Pure preference losses: DPO / cDPO and IPO (sequence level), RRPO (token level).

They are registered under the entry-point group ``savi_plugin.losses`` (``dpo``, ``ipo``, ``rrpo``; see
setup.cfg), so a third party adds its own loss by declaring an entry point, not by editing this package.
"""

from savi_plugin.losses.dpo import dpo_loss, ipo_loss
from savi_plugin.losses.rrpo import RRPOOutput, rrpo_loss, rrpo_loss_from_logits, token_kl_from_logprobs

__all__ = ["RRPOOutput", "dpo_loss", "ipo_loss", "rrpo_loss", "rrpo_loss_from_logits", "token_kl_from_logprobs"]
