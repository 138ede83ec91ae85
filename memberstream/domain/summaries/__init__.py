"""Review summaries: aspects, the extractive summarizer, the per-product review buffer
and ROUGE."""
