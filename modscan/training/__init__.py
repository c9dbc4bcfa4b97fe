"""Training the detector: data loading, augmentation, the resumable loop and calibration."""
