exec(open('.pxl_gpu_tmp/stub.py').read())
import torch, time, torch.nn.functional as F
from mmcast.models.losses import InstanceAwarePixelContrastLoss as L
from mmcast.models.layers import PhotometricStrongView as P
g = torch.Generator().manual_seed(0)
zw = F.normalize(torch.randn(4, 16, 8, 12, generator=g), dim=1); zs = F.normalize(torch.randn(4, 16, 8, 12, generator=g), dim=1)
ml = torch.randn(4, 10, 16, 24, generator=g); cl = torch.randn(4, 10, 9, generator=g); ids = torch.randint(-1, 4, (4, 8, 12), generator=g)
l = L(num_negatives=50, chunk_size=100)
idx = l.sample_negatives(ml, cl, (8, 12))
a = l(zw, zs, ml, cl, ids, neg_indices=idx)
c = 'cuda'
b = l(zw.to(c), zs.to(c), ml.to(c), cl.to(c), ids.to(c), neg_indices=idx.to(c))
print({k: (a[k].item(), b[k].item()) for k in a})
ic = l.sample_negatives(ml.to(c), cl.to(c), (8, 12)); print('cuda idx', ic.shape, ic.device, bool((ic // 96 != torch.arange(384, device=c)[:, None] // 96).all()))
with torch.autocast('cuda', dtype=torch.bfloat16):
    o = l(zw.to(c).requires_grad_(), zs.to(c), ml.to(c), cl.to(c))
print('autocast', o['loss_pxl'].dtype, o['loss_pxl'].item())
x = torch.randn(8, 3, 512, 1024)
p1, p2 = P([123.7, 116.3, 103.5], [58.4, 57.1, 57.4], seed=3), P([123.7, 116.3, 103.5], [58.4, 57.1, 57.4], seed=3).to(c)
print('view cpu vs cuda', (p1(x) - p2(x.to(c)).cpu()).abs().max().item())
xc = x.to(c); p2(xc); torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(10): p2(xc)
torch.cuda.synchronize(); print('strong view 8x3x512x1024 cuda ms', (time.perf_counter() - t) * 100)
for B, h, w in [(8, 19, 37), (8, 64, 128)]:
    zw = F.normalize(torch.randn(B, 128, h, w, device=c), dim=1).requires_grad_(); zs = F.normalize(torch.randn(B, 128, h, w, device=c), dim=1)
    ml = torch.randn(B, 100, 4 * h, 4 * w, device=c); cl = torch.randn(B, 100, 9, device=c)
    l = L()
    def tm(f, n=10):
        f(); torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(n): f()
        torch.cuda.synchronize(); return (time.perf_counter() - t) / n * 1e3
    idx = l.sample_negatives(ml, cl, (h, w))
    print(B, h, w, 'sample ms', tm(lambda: l.sample_negatives(ml, cl, (h, w))), 'fwd+bwd given idx ms', tm(lambda: l(zw, zs, neg_indices=idx)['loss_pxl'].backward()), 'full ms', tm(lambda: l(zw, zs, ml, cl)['loss_pxl'].backward()))
B, h, w = 8, 64, 128
ml = torch.randn(B, 100, 4 * h, 4 * w, device=c); cl = torch.randn(B, 100, 9, device=c)
l = L(); l.sample_negatives(ml, cl, (h, w)); torch.cuda.synchronize()
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
    l.sample_negatives(ml, cl, (h, w)); torch.cuda.synchronize()
print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=10, max_name_column_width=60))
