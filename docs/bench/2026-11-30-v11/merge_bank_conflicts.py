import random, statistics
def wavefronts(idx_list):
    # idx: u64 element indices accessed by active lanes; each covers words 2i, 2i+1
    banks={}
    for i in set(idx_list):
        for w in (2*i,2*i+1):
            banks.setdefault(w%32,set()).add(w)
    return max(2 if len(idx_list)>16 else 1, max(len(v) for v in banks.values()))
def sim(length, threads, swz):
    RUN=64; P=max(length//threads,1); run=max(RUN,P//2)
    keys=random.sample(range(1,10**9),length)
    frm=[]
    for r in range(0,length,run): frm+=sorted(keys[r:r+run],reverse=True)
    w=run; total=0; rounds=0
    while w<length:
        to=[None]*length
        state=[]
        for t in range(threads):
            first=t*P
            if first>=length: state.append(None); continue
            pair=first-first%(2*w); d=first-pair
            a0,b0=pair,pair+w
            lo,hi=max(0,d-w),min(d,w)
            while lo<hi:
                mid=(lo+hi)//2
                if frm[a0+mid]>frm[b0+d-1-mid]: lo=mid+1
                else: hi=mid
            state.append([first,a0,b0,lo,d-lo])
        for warp in range(threads//32):
            lanes=[state[warp*32+l] for l in range(32) if state[warp*32+l]]
            for k in range(P):
                reads=[];writes=[]
                for s in lanes:
                    first,a0,b0,i,j=s
                    ta= j>=w or (i<w and frm[a0+i]>frm[b0+j])
                    reads+= [swz(a0+i)] if i<w else []
                    reads+= [swz(b0+j)] if j<w else []
                    to[first+k]=frm[a0+i] if ta else frm[b0+j]
                    writes.append(swz(first+k))
                    if ta: s[3]+=1
                    else: s[4]+=1
                total+=wavefronts(reads[0::2])+wavefronts(reads[1::2])+wavefronts(writes)
        frm=to; w*=2; rounds+=1
    assert frm==sorted(keys,reverse=True)
    return total, rounds
ident=lambda i:i
def xor16(i): return i ^ ((i>>4)&15)
def xorP(P):
    sh=P.bit_length()-1
    return lambda i: i ^ ((i>>sh)&15) if True else i
for length,threads in ((4096,1024),(8192,1024),(2048,1024),(2048,256),(8192,256)):
    P=length//threads
    for name,f in (("identity",ident),("xor(i>>4)",xor16),("xor(i>>log2P)",xorP(P))):
        tot,r=sim(length,threads,f)
        print(f"len {length} threads {threads} P {P} {name:14s} wavefronts/round/warp {tot/r/(threads//32):7.1f} (min {3*2*P})")
