"""Image backbones: networks that turn an image batch into one feature row per image, chosen by config
(``model/net=resnet18|small_cnn``), each an embedding net.

``head.py`` the embedding net (a backbone's pooled features and a linear projection); ``resnet.py`` torchvision's
ResNet18 with its weight loading (random init, ImageNet weights, a local file) and its cache identity;
``small_cnn.py`` a small CNN for CPU training at 32-64 px.
"""
