__all__ = ["INDICNEWS_COMMIT", "INDICNEWS_SHA256", "STSB_MR_COMMIT", "STSB_MR_SHA256"]

"""SHA-256 of the IndicNews files at the commit the presets download from (``INDICNEWS_COMMIT``).

Computed from a copy of l3cube-pune/indic-nlp at that commit. The files that copy did not hold (the larger
LPC/LDC splits and most training files) are fetched from the pinned commit without a checksum: the commit
already fixes their content; a checksum here also catches a changed or tampered file in transit or at rest.
"""

INDICNEWS_COMMIT = "0c6014be94385b357e31ce6250da7094e8a7c0fb"

INDICNEWS_SHA256 = {
    "Bengali/SHC/Bengal_SHC_Test.csv": "46b45e4a5e27bdb9352c09ff4cac1092b0850202573874c4953bc9bdeb8eb449",
    "Bengali/SHC/Bengal_SHC_Train.csv": "0bc57a779ac344bb2c671ed3d6e64c60b3426f19dea410ab8107002d819b7643",
    "Bengali/SHC/Bengal_SHC_Valid.csv": "375a199f0f42cda313d9062ee476b6d5bac1683282b886569bf9cf74097676f8",
    "English/SHC/English_test_shc.csv": "db60ab93edba3f5f8bcfbae3b425e2a287ba5968325c203e2e774eb45cae4e92",
    "English/SHC/English_train_shc.csv": "6b3f12a89af9dd4c27dfc4226a40740d0a6e0c1c7e3a5f2b494db34f9820ade1",
    "English/SHC/English_valid_shc.csv": "45b4f36a0b0df949f01d936b0bedddd1d93ad88e2b5a39af13340fffc68a0eb6",
    "Gujarati/SHC/Gujarati_SHC_Test.csv": "0a65d65caa793d1c621520b882a70b918032f7da964a2a10f282c1da9974cbc2",
    "Gujarati/SHC/Gujarati_SHC_Valid.csv": "1091d04a85a229b8e772f76e9e6eb267950a64fa023332624ba042bd6b820bff",
    "Hindi/SHC/Hindi_SHC_Test.csv": "03fd7a26628ffa43b426472732dee8a344b1a280690ebd32a814e0db9c323323",
    "Hindi/SHC/Hindi_SHC_Valid.csv": "df681b57d0859c39829b21fffdd46e7e881c8f4c5f452f3c9dd7a940460f5b53",
    "Kannada/SHC/Kannada_SHC_Test.csv": "8d31c0a0a128c3ba88873788d6251e9c7a96f1ec563e6e3c810b66c3beadef73",
    "Kannada/SHC/Kannada_SHC_Valid.csv": "0a941f13274425b5d9c2b6650397b5a066ee8149c891e2a747459d83a662f682",
    "Malayalam/SHC/Malayalam_SHC_Test.csv": "bff3c7dabd2919a9792200683834d2a060a7f5adc273764d4a779d54d497a504",
    "Malayalam/SHC/Malayalam_SHC_Valid.csv": "9d1dbe798c3c4412d1f39da4da69b71bab8022c311642e8d8c62854b109684e6",
    "Marathi/LPC/Marathi_LPC_Test.csv": "9717dc61a3bb8215e0d2b275ac049c55c8bfabf56e37e5d1ef3cceef89b026af",
    "Marathi/LPC/Marathi_LPC_Valid.csv": "8a8cd5e067df9de045e987b6c0f2fd69dba951922ac7e60f69ccdec873a26900",
    "Marathi/SHC/Marathi_SHC_Test.csv": "c7e2e3894554ea929c9d2c6e81ef5a7ae204f99f261d84e947b5e95d9b9eb8e8",
    "Marathi/SHC/Marathi_SHC_Valid.csv": "4682ba92da0119c84f7d8456c20c9ee206fcd7f37c0e94710f8437ae9916663a",
    "Odia/SHC/Odia_SHC_Test.csv": "eb3101d8af8397b1dc86fb27baaaa2959d6cd148bf17c758830030a314b98d80",
    "Odia/SHC/Odia_SHC_Valid.csv": "2e74113b974993a809c79b5d91b7fed2146a2f141b3862f2502c18e4b51a05ba",
    "Punjabi/LPC/Punjabi_LPC_Test.csv": "edbd1af9c481aaf11e1c5e5684525b0c81388a69df28ba8807aea33132e14990",
    "Punjabi/LPC/Punjabi_LPC_Valid.csv": "fa672e3baaece94585e18a43a9d291ef62d2ca83d667ac0a004c209b65ee3ada",
    "Punjabi/SHC/Punjabi_SHC_Test.csv": "af3fc7a85e87fd4e2adc02daba4baf493cf65339f77a777c72efc3b3c4b1977d",
    "Punjabi/SHC/Punjabi_SHC_Valid.csv": "00785e46b86fd9bfcc16212034277a8e91bafc049a8079d0b126e294ab2bc81f",
    "Tamil/SHC/Tamil_SHC_Test.csv": "9cac20fea815ef1d19c69f5fc3e471f27740f799cb0739721f7d83a98fde8ff2",
    "Tamil/SHC/Tamil_SHC_Valid.csv": "035592969d44f6686b84ad8e4b370380fb5c2bbf4db450473311e8b196870e67",
    "Telugu/SHC/Telugu_SHC_Test.csv": "ffe8b8fff8af17174aaaea28a0e830790e0720b5ee4e12f2145cf13297877504",
    "Telugu/SHC/Telugu_SHC_Valid.csv": "2ae4745439e3849cf82d08a40d4798b00173541c498a421f9e6562a8620007a7",
}

# The STS Benchmark translated to Marathi (l3cube-pune/MarathiNLP), at its commit of 2025-09-14; the sums were
# computed from that commit's files, and match the offline copies the tests read ($PRUNETUNE_DATA_DIR/stsb-marathi).
STSB_MR_COMMIT = "8ee29fa1329d6a841030eb46659d3c10614b5e59"

STSB_MR_SHA256 = {
    "sts-train-mr.tsv": "e63b8cf75017fddb83ca621f94fecb45041030fa528bc9c84288884cd2db36be",
    "sts-dev-mr.tsv": "e089871acd6a9b899eebddcccb36b2ba79272736e83501e853ab8e966cf279de",
    "sts-test-mr.tsv": "082b1c0dda36ae6759675ea74d70f61687c1d9675f779dbf605fdcd8b2659ce5",
}
