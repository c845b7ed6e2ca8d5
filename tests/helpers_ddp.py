"""The small network of the distributed tests, importable by the test and by its torchrun children."""
from torch import nn


class Plain(nn.Module):
    """Two strided convs, no batch norm, no dropout; ``on_step()`` runs before every training forward."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)

    def on_step(self) -> None:
        pass

    def forward(self, x):
        if self.training:
            self.on_step()
        return self.fc(self.features(x))
