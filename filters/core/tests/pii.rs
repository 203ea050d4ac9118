// PII detector accuracy against the committed corpus.
