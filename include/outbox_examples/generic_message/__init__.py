"""Generic message table with compensation, consumer table and reconciliation (scenario 3)."""
