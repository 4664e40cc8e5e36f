import random
def best_of(keys, count, wanted, threads=1024, levels=3):
    keys=list(keys)+[0]*0
    out={}
    handed=0; level=0
    while count*count > 64*threads and level < levels:
        ks=keys[:count]; low,high=min(ks),max(ks)
        shift=max((high-low).bit_length()-10,0)
        b=lambda k:(k-low)>>shift
        hist=[0]*1024
        for k in ks: hist[b(k)]+=1
        above=0; cb=1023
        while above+hist[cb]<wanted: above+=hist[cb]; cb-=1
        c0=c1=0
        for r in range((count+threads-1)//threads):
            batch=[(i,keys[i]) for i in range(r*threads,min(count,(r+1)*threads))]
            random.shuffle(batch)
            writes=[]
            for i,k in batch:
                if b(k)>cb: out[handed+c0]=k; c0+=1
                elif b(k)==cb: writes.append((c1,k)); c1+=1
            for slot,k in writes:
                assert slot < (r+1)*threads
                keys[slot]=k
        assert c0==above and c1==hist[cb]
        handed+=above; wanted-=above; count=hist[cb]; level+=1
    ks=sorted(keys[:count],reverse=True)
    for r in range(wanted): out[handed+r]=ks[r]
    return out,handed,level
for trial in range(300):
    n=random.choice([300,1000,2006,4096])
    kind=random.choice(['uniform','crowded','groups'])
    if kind=='uniform': ks=random.sample(range(1,2**63),n)
    elif kind=='crowded': base=random.randrange(2**60); ks=random.sample(range(base,base+n*50),n-3)+[base+2**50,base+2**55,base+2**58]
    else:
        ks=[]
        for g in range(random.randint(1,4)):
            sc=random.randrange(2**31)
            ks+=[(sc<<32)|(~i & 0xffffffff) for i in random.sample(range(32768),n//4)]
        ks=list(set(ks))
    n=len(ks); wanted=random.randint(1,n)
    out,h,lv=best_of(ks,n,wanted)
    best=sorted(ks,reverse=True)[:wanted]
    assert sorted(out.values(),reverse=True)==best and len(out)==wanted
    assert [out[i] for i in range(h,wanted)]==best[h:], "ordered part"
print("ok")
