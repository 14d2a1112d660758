"""Dataset loaders (real formats) behind the ImageDataset interface."""
