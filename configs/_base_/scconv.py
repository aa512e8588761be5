# The SCConv options of the paper (Sec. 3): alpha 1/2, r = 2, g = 2,
# threshold 0.5; gn_groups and the soft gate are this project's defaults
# (see docs/design.md, "What the paper leaves open"). A config using them
# also needs custom_imports = dict(imports=['mmdet_scconv']) (the paper
# bases have it).
scconv_cfg = dict(
    alpha=0.5,
    squeeze_ratio=2,
    groups=2,
    gn_groups=16,
    gate_threshold=0.5,
    gate='soft')
