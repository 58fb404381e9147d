"""DICOM network edge of lowdose: scanners, simulators and PACS push dose reports here.

``lowdose dicom-listen`` (:mod:`lowdose.commands.dicom_listen`) runs a Storage SCP
(:mod:`ingest.scp`) that publishes every accepted object to ``lowdose.rdsr.v1`` before answering
Success; :mod:`ingest.pacs` asks the department's PACS whether planning series are labelled as
such. Layer: above :mod:`streams` (may import it and the optimiser's records and DICOM reader);
nothing below the front door imports it (docs/architecture.md).
"""
