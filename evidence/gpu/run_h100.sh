#!/usr/bin/env bash
# The issue-6 GPU run: `bnblint doctor` and `bnblint verify` on the documented example, on the
# device machine (torch and transformers preinstalled; bitsandbytes and libcst carried as wheels
# in .whl/). The model is a randomly initialised Llama with the shape of the 1.1B probe in
# ../shared/evidence/ (hidden 2048, 22 layers), saved in bf16: no download is possible there.
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
print("saved", sum(p.numel() for p in model.parameters()) / 1e9, "B params")
PY
cat > /tmp/example.py <<'PY'
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.1-8B-Instruct", quantization_config=quantization_config)
PY
cp /tmp/example.py "$out/example.py"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt"
python3 -m bnblint verify /tmp/example.py --model /tmp/llama-1.1b --device cuda --json \
  > "$out/verify_h100.json" 2> "$out/verify_h100.stderr"
echo "verify rc=$?"
python3 -m bnblint doctor --json > "$out/doctor_h100.json" 2> "$out/doctor_h100.stderr"
echo "doctor rc=$?"
