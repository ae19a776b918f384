import sys, types, torch.nn as nn
class R:
    def register_module(self, *a, **k):
        return lambda c: c
def mod(name, **kw):
    m = types.ModuleType(name); m.__dict__.update(kw); sys.modules[name] = m; return m
class BaseModule(nn.Module):
    def __init__(self, init_cfg=None):
        super().__init__()
mod('mmdet', __path__=[]); mod('mmdet.registry', MODELS=R()); mod('mmdet.utils', OptMultiConfig=None)
mod('mmengine', __path__=[]); mod('mmengine.model', BaseModule=BaseModule)
mod('mmcast', __path__=['mmcast']); mod('mmcast.models', __path__=['mmcast/models'])
