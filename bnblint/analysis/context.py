"""Facts about a whole file that change what a rule may suggest."""

from __future__ import annotations

import io
import re
import tokenize

# Names whose use means the script runs one process per GPU, where ``device_map="auto"``
# (one process spreading the model over every GPU) is wrong.
DISTRIBUTED_NAMES = frozenset(
    {
        "Trainer",
        "Seq2SeqTrainer",
        "SFTTrainer",
        "DPOTrainer",
        "ORPOTrainer",
        "KTOTrainer",
        "CPOTrainer",
        "GRPOTrainer",
        "PPOTrainer",
        "RewardTrainer",
        "Accelerator",
        "PartialState",
        "deepspeed",
        "DeepSpeedPlugin",
        "FullyShardedDataParallel",
        "FSDP",
        "DistributedDataParallel",
        "init_process_group",
    }
)
_STRING_MARKERS = re.compile(r"\b(LOCAL_RANK|WORLD_SIZE)\b")


def distributed_reason(source: str) -> str | None:
    """The first sign, in code (not comments), that this is a distributed-training script."""
    previous = ""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        for tok in tokens:
            if tok.type == tokenize.NAME:
                if tok.string in DISTRIBUTED_NAMES:
                    return f"it uses `{tok.string}`"
                if previous == "torch." and tok.string == "distributed":
                    return "it uses `torch.distributed`"
                previous = "torch." if tok.string == "torch" else ""
            elif tok.type == tokenize.OP and tok.string == "." and previous == "torch.":
                continue
            elif tok.type == tokenize.STRING:
                match = _STRING_MARKERS.search(tok.string)
                if match:
                    return f"it reads `{match.group(1)}`"
                previous = ""
            else:
                previous = ""
    except (tokenize.TokenError, SyntaxError):
        return None
    return None
