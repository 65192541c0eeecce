"""Fine-tuning: SFT of LoRA/DoRA/QLoRA adapters with PEFT and the HF Trainer; retriever training."""
