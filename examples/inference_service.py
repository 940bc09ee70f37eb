import os

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, pipeline

model_kwargs = {"dtype": torch.bfloat16}
if os.environ.get("QUANTIZE") == "4bit":
    model_kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True)

model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B-Instruct", **model_kwargs)
generator = pipeline(
    "text-generation",
    model="Qwen/Qwen2.5-7B-Instruct",
    model_kwargs={"quantization_config": BitsAndBytesConfig(load_in_8bit=True)},
)
