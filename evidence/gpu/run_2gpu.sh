#!/usr/bin/env bash
# On a 2-GPU machine: the documented example's fixed load (device_map="auto") is spread over
# both GPUs by accelerate. Same model and wheels as run_h100.sh; no doctor run (device time).
set -u
out=${OUT:-/tmp/out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
python3 - <<'PY'
import torch
from transformers import LlamaConfig, LlamaForCausalLM

config = LlamaConfig(
    hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
    num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
)
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlamaForCausalLM(config).to(torch.bfloat16)
model.save_pretrained("/tmp/llama-1.1b")
PY
cp evidence/gpu/example.py /tmp/example.py
nvidia-smi --query-gpu=index,name --format=csv > "$out/gpus_2gpu.txt"
python3 -m bnblint verify /tmp/example.py --model /tmp/llama-1.1b --device cuda --json \
  > "$out/verify_2gpu.json" 2> "$out/verify_2gpu.stderr"
echo "verify rc=$?"
