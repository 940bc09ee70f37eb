"""Names that decide what is a model load, shared by the analysis and the pipeline's cheap
stdlib-AST filter (which must not import LibCST)."""

from __future__ import annotations

# Loaders whose from_pretrained is not transformers' (their load_in_4bit is a real parameter, or
# their bitsandbytes config is their own) and classes that never load weights.
FOREIGN_ROOTS = frozenset(
    {"unsloth", "diffusers", "optimum", "ipex_llm", "intel_extension_for_transformers", "vllm"}
)
FOREIGN_NAMES = frozenset({"FastLanguageModel", "FastModel", "FastVisionModel", "FastTextModel"})
NON_MODEL_SUFFIXES = (
    "Tokenizer",
    "TokenizerFast",
    "Processor",
    "FeatureExtractor",
    "ImageProcessor",
    "Config",
)
